"""Schemathesis hooks for scripts/fuzz.sh: the API's cross-field rules.

openapi.json states every range, length, pattern and enum of the API, but
JSON Schema cannot compare two values of one request. These rules are of
that kind, and the schema states them in words only:

- a `step` prior needs `lower < upper`, and a width of at least 1e-9 of
  its distance from 0 or 1;
- a `grid` prior needs at least one weight above zero, and every weight
  above zero at least 2.2250738585072014e-308 times the largest;
- an observation's `successes` may not exceed its `trials`;
- an experiment's arms are distinct, its control is one of them, its
  `planned_weights` has one positive weight an arm, none below 1e-12 of
  the largest, and its bandit's `floor` is at most 1/arms.

Left alone, the fuzzer would count the server's 422 for such a body as a
valid request rejected. The hook repairs exactly these cases, and only
where each value is valid by itself, so a body made invalid on purpose
elsewhere stays invalid.

The same holds for the file of `POST /uploads`: any string is a file to the
schema, but only a CSV of observations is a valid upload, and the same file
twice is a 409 by design. A generated file (a string, as the body or as the
form's `file`) is replaced with a small valid CSV made unique by an id, in
the requests generated as valid only: a body generated to break the schema
is sent as it is, so it stays a request the service must refuse.
"""

import uuid

import schemathesis

# The smallest ratio of a grid weight to the largest that a double holds
# (the smallest normal double), and of a planned weight to the largest.
_MIN_GRID_RATIO = 2.2250738585072014e-308
_MIN_PLANNED_RATIO = 1e-12


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _repair_prior(prior):
    if not isinstance(prior, dict):
        return
    kind = prior.get("type")
    if kind == "step":
        lower, upper = prior.get("lower"), prior.get("upper")
        if _number(lower) and _number(upper) and 0 <= lower <= 1 and 0 <= upper <= 1:
            if lower > upper:
                prior["lower"], prior["upper"] = upper, lower
            elif lower == upper:
                prior["lower"], prior["upper"] = (0, upper) if upper > 0 else (0, 1)
            lower, upper = prior["lower"], prior["upper"]
            # Bounds other than 0 below 1e-300 go to 0; a step too narrow
            # for the doubles near it is widened.
            if 0 < lower < 1e-300:
                prior["lower"] = lower = 0
            if 0 < upper < 1e-300:
                prior["upper"] = upper = 1e-300
            if upper - lower < 2e-9 * min(upper, 1 - lower):
                prior["lower"], prior["upper"] = 0, 1
    elif kind == "grid":
        weights = prior.get("weights")
        if (
            isinstance(weights, list)
            and len(weights) >= 2
            and all(_number(w) and w >= 0 for w in weights)
        ):
            if all(w == 0 for w in weights):
                weights[0] = 1
            # A weight too small to hold relative to the largest is 0 here.
            largest = max(weights)
            for i, w in enumerate(weights):
                if 0 < w < 2 * _MIN_GRID_RATIO * largest:
                    weights[i] = 0


def _whole(value):
    return _number(value) and float(value).is_integer()


def _repair_observation(item):
    if not isinstance(item, dict):
        return
    successes, trials = item.get("successes"), item.get("trials")
    if _whole(successes) and _whole(trials) and 0 <= trials < successes <= 1_000_000:
        item["successes"], item["trials"] = trials, successes


def _valid_csv():
    return "model,outcome,id\nglobe,w,fuzz-%s\nglobe,WLW,\n" % uuid.uuid4().hex


def _generated_invalid(case, location):
    """True when schemathesis generated `location` ("body", "query", ...) of
    the case to break the schema (its negative mode)."""
    components = getattr(getattr(case, "meta", None), "components", None) or {}
    for where, info in components.items():
        if getattr(where, "value", where) == location:
            return getattr(getattr(info, "mode", None), "value", None) == "negative"
    return False


def _header_safe(name):
    return not any(ord(c) < 0x20 or c in '\x7f"\\' for c in name)


def _repair_upload(case):
    body = case.body
    if isinstance(body, (str, bytes)):
        case.body = _valid_csv()
    elif isinstance(body, dict) and isinstance(body.get("file"), (str, bytes)):
        # As text: schemathesis re-validates an edited case, and counts a
        # body holding bytes (or its own `Binary`) as invalid, so a repaired
        # form's 202 was reported as a schema-violating request accepted.
        # The service takes a part named `file` with or without a filename.
        # Extra fields stay (the form allows them), but not those whose name
        # no multipart header can carry: a control character or a quote in
        # a Content-Disposition is malformed HTTP, refused with 400 before
        # any schema applies.
        extras = {k: v for k, v in body.items() if k != "file" and _header_safe(k)}
        case.body = {**extras, "file": _valid_csv()}


def _repair_experiment(body):
    arms = body.get("arms")
    if not (isinstance(arms, list) and 2 <= len(arms) <= 20 and all(isinstance(a, str) for a in arms)):
        return
    seen = set()
    for i, arm in enumerate(arms):
        if arm in seen:
            arms[i] = "arm%d-%s" % (i, uuid.uuid4().hex[:8])
        seen.add(arms[i])
    if isinstance(body.get("control"), str) and body["control"] not in arms:
        body["control"] = arms[0]
    weights = body.get("planned_weights")
    if isinstance(weights, list) and all(_number(w) for w in weights):
        fixed = [w if w > 0 else 1 for w in weights][: len(arms)]
        fixed = fixed + [1] * (len(arms) - len(fixed))
        largest = max(fixed)
        body["planned_weights"] = [max(w, 2 * _MIN_PLANNED_RATIO * largest) for w in fixed]
    bandit = body.get("bandit")
    if isinstance(bandit, dict) and _number(bandit.get("floor")) and bandit["floor"] * len(arms) > 1:
        bandit["floor"] = 0


@schemathesis.hook
def before_call(context, case, kwargs):
    # Runs before every request of every phase (explicit examples, coverage,
    # fuzzing, stateful); schemathesis re-checks the edited case against the
    # schema, so a repaired body counts as what it now is.
    body = case.body
    if case.method.upper() == "POST" and case.operation.path == "/uploads":
        if not _generated_invalid(case, "body"):
            _repair_upload(case)
        return
    if isinstance(body, dict):
        _repair_experiment(body)
        _repair_prior(body.get("prior"))
        _repair_observation(body)
    elif isinstance(body, list):
        for item in body:
            _repair_observation(item)
