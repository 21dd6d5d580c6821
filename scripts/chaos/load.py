#!/usr/bin/env python3
"""The load of scripts/chaos.sh, and its verdict (Python 3 standard library only).

  load.py run     posts observations to the producer over HTTP and publishes
                  records with kcat until the file --stop-file appears, then
                  keeps retrying what is not acknowledged yet (up to --drain
                  seconds); writes what was acknowledged, per model, to --out.
  load.py verify  waits until the pipeline has caught up (every partition's
                  offset stored in Postgres equals the broker's end offset,
                  and the counts stand still, or equal what was
                  acknowledged), then prints acknowledged against counted per
                  model and exits 1 on any difference.

Every HTTP request carries an Idempotency-Key and every kcat record a JSON
"id". A request that gets a 503, a timeout or a connection error is sent
again, the same body with the same key, until it gets its 202; a kcat chunk
whose delivery failed is sent again whole, with the same ids. The consumer
applies each id once (docs/exactly-once.md), so what is counted
must equal what was acknowledged: less is a lost observation, more a doubled one.
Besides the retries the chaos provokes, a few acknowledged requests and
chunks (--resend) are sent once more, as by a client whose answer was lost,
so every run puts copies in the log for the consumers to skip.
The load is drawn from --seed, so a run can be repeated.
"""

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.parse

# How long one HTTP attempt may take: longer than the producer's ack_timeout
# (15 s), so a 503 is seen as a 503 rather than as a timeout.
HTTP_TIMEOUT = 25.0
# How long one kcat run may take before it is killed and its chunk sent again.
KCAT_TIMEOUT = 40.0


def log(message):
    print(f"    load: {message}", flush=True)


class Ledger:
    """What was acknowledged, per model, and what it took (shared by the threads)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}  # model -> [trials, successes]
        self.ids = []  # the ids of the acknowledged observations
        self.stats = {
            "requests": 0,
            "http_observations": 0,
            "kcat_chunks": 0,
            "kcat_records": 0,
            "kcat_observations": 0,
            "status_503": 0,
            "timeouts": 0,
            "connection_errors": 0,
            "kcat_failures": 0,
            "resent": 0,
            "unexpected": 0,
            "unacknowledged": 0,
        }
        self.unexpected = []  # a few examples of answers that are neither 202 nor 503

    def add(self, counts, ids, **stats):
        with self.lock:
            self.ids.extend(ids)
            for model, (trials, successes) in counts.items():
                entry = self.acked.setdefault(model, [0, 0])
                entry[0] += trials
                entry[1] += successes
            for name, value in stats.items():
                self.stats[name] += value

    def count(self, name, value=1):
        with self.lock:
            self.stats[name] += value

    def note_unexpected(self, text):
        with self.lock:
            self.stats["unexpected"] += 1
            if len(self.unexpected) < 10:
                self.unexpected.append(text)

    def snapshot(self):
        with self.lock:
            return {m: list(v) for m, v in self.acked.items()}, dict(self.stats), list(self.unexpected)

    def acked_ids(self):
        with self.lock:
            return list(self.ids)


def outcome_item(rng, model):
    """One observation of a random form, with its (trials, successes)."""
    form = rng.random()
    if form < 0.4:
        outcome = rng.choice("wl")
        return {"model": model, "outcome": outcome}, (1, int(outcome == "w"))
    if form < 0.7:
        run = "".join(rng.choice("wl") for _ in range(rng.randint(2, 12)))
        return {"model": model, "outcomes": run}, (len(run), run.count("w"))
    trials = rng.randint(1, 50)
    successes = rng.randint(0, trials)
    return {"model": model, "successes": successes, "trials": trials}, (trials, successes)


def add_counts(counts, model, trials, successes):
    entry = counts.setdefault(model, [0, 0])
    entry[0] += trials
    entry[1] += successes


def make_request(rng, models):
    """A random request: (path, content type, body, counts per model, the
    number of observations in a JSON array or None)."""
    counts = {}
    form = rng.random()
    if form < 0.45:
        model = rng.choice(models)
        item, (trials, successes) = outcome_item(rng, model)
        add_counts(counts, model, trials, successes)
        return "/observations", "application/json", json.dumps(item), counts, None
    if form < 0.85:
        items = []
        for _ in range(rng.randint(2, 25)):
            model = rng.choice(models)
            item, (trials, successes) = outcome_item(rng, model)
            add_counts(counts, model, trials, successes)
            items.append(item)
        return "/observations", "application/json", json.dumps(items), counts, len(items)
    model = rng.choice(models)
    run = [rng.choice("WL") for _ in range(rng.randint(1, 20))]
    add_counts(counts, model, len(run), run.count("W"))
    path = "/observations?" + urllib.parse.urlencode({"model": model})
    return path, "text/plain", " ".join(run), counts, None


class Clock:
    """When the load stops (the stop file appeared) and when retrying ends."""

    def __init__(self, drain):
        self.stop = threading.Event()
        self.drain = drain
        self.give_up_at = float("inf")

    def stopping(self):
        self.give_up_at = time.monotonic() + self.drain
        self.stop.set()

    def given_up(self):
        return time.monotonic() > self.give_up_at


def post_until_accepted(args, ledger, clock, path, content_type, body, key):
    """Sends the request until the producer answers 202; the same body and
    key every time. Returns False when the drain time ran out first, or when
    the producer refused the request itself (a 4xx: nothing was written)."""
    url = urllib.parse.urlsplit(args.producer)
    headers = {"content-type": content_type, "idempotency-key": key}
    data = body.encode()
    pause = 0.1
    while True:
        if clock.given_up():
            return False
        status, text = None, ""
        try:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=HTTP_TIMEOUT)
            try:
                conn.request("POST", path, body=data, headers=headers)
                response = conn.getresponse()
                status, text = response.status, response.read().decode(errors="replace")
            finally:
                conn.close()
        except TimeoutError:
            ledger.count("timeouts")
        except (OSError, http.client.HTTPException):
            # Refused (the producer is down), reset or cut off mid-answer.
            ledger.count("connection_errors")
        if status == 202:
            return True
        if status == 503:
            ledger.count("status_503")
        elif status is not None:
            ledger.note_unexpected(f"{status} for {path} (key {key}): {text[:300]}")
            if 400 <= status < 500:
                return False
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def due_resends(resends, clock):
    """Takes out of `resends` (a list of (due time, what)) those whose time
    has come; all of them once the load has stopped."""
    now = time.monotonic()
    due = [what for at, what in resends if at <= now or clock.stop.is_set()]
    resends[:] = [(at, what) for at, what in resends if at > now and not clock.stop.is_set()]
    return due


def http_worker(args, ledger, clock, index):
    rng = random.Random(f"{args.seed}:http:{index}")
    models = [f"m{i:02d}" for i in range(args.models)]
    interval = args.workers / args.rate
    sent = 0
    resends = []
    next_at = time.monotonic()
    while not clock.stop.is_set() or resends:
        for path, content_type, body, key in due_resends(resends, clock):
            # The same request again, the same key: counted once.
            ledger.count("resent")
            if not post_until_accepted(args, ledger, clock, path, content_type, body, key):
                ledger.count("unacknowledged")
        if clock.stop.is_set():
            continue
        path, content_type, body, counts, items = make_request(rng, models)
        key = f"chaos-{args.seed}-h{index}-{sent}"
        sent += 1
        if post_until_accepted(args, ledger, clock, path, content_type, body, key):
            trials = sum(t for t, _ in counts.values())
            # The producer's ids: the key, or `key:i` for item i of an array.
            ids = [key] if items is None else [f"{key}:{i}" for i in range(items)]
            ledger.add(counts, ids, requests=1, http_observations=trials)
            # Now and then the answer is "lost": the client sends the
            # request again once its own timeout (1 to 5 s) has passed.
            if rng.random() < args.resend:
                resends.append((time.monotonic() + rng.uniform(1, 5), (path, content_type, body, key)))
        else:
            ledger.count("unacknowledged")
        next_at += interval
        clock.stop.wait(max(0.0, next_at - time.monotonic()))
        next_at = max(next_at, time.monotonic() - interval)


def kcat_until_delivered(args, ledger, clock, chunk):
    """Runs kcat with the chunk until it reports every record delivered;
    False when the drain time ran out first."""
    while not kcat_send(args, chunk):
        ledger.count("kcat_failures")
        if clock.given_up():
            return False
        time.sleep(0.5)
    return True


def kcat_worker(args, ledger, clock):
    rng = random.Random(f"{args.seed}:kcat")
    models = [f"m{i:02d}" for i in range(args.models)]
    number = 0
    resends = []
    while not clock.stop.is_set() or resends:
        for chunk in due_resends(resends, clock):
            ledger.count("resent")
            if not kcat_until_delivered(args, ledger, clock, chunk):
                ledger.count("unacknowledged")
        if clock.stop.is_set():
            continue
        lines, counts, ids = [], {}, []
        for _ in range(rng.randint(5, 40)):
            model = rng.choice(models)
            item, (trials, successes) = outcome_item(rng, model)
            item["id"] = f"kcat-{args.seed}-{number}"
            ids.append(item["id"])
            number += 1
            add_counts(counts, model, trials, successes)
            # Key and value apart by a tab: JSON holds no raw tab.
            lines.append(f"{model}\t{json.dumps(item)}")
        chunk = ("\n".join(lines) + "\n").encode()
        if kcat_until_delivered(args, ledger, clock, chunk):
            trials = sum(t for t, _ in counts.values())
            ledger.add(counts, ids, kcat_chunks=1, kcat_records=len(lines), kcat_observations=trials)
            # As for HTTP: now and then the same chunk again, a little later.
            if rng.random() < args.resend:
                resends.append((time.monotonic() + rng.uniform(1, 5), chunk))
        else:
            ledger.count("unacknowledged")
        clock.stop.wait(rng.uniform(0.2, 1.0))


def kcat(args):
    """kcat and its connection: the brokers, and the services' librdkafka
    options (TLS, SASL) from --kcat-config when given."""
    command = ["kcat", "-b", args.brokers]
    if args.kcat_config:
        command += ["-F", args.kcat_config]
    return command


def kcat_send(args, chunk):
    """True when kcat says every record of the chunk was delivered (it exits
    1 when a delivery failed or the broker cannot be reached)."""
    command = [
        *kcat(args), "-t", args.topic, "-P", "-K", "\t",
        "-X", "message.timeout.ms=15000",
        "-X", "socket.timeout.ms=10000",
    ]
    try:
        done = subprocess.run(command, input=chunk, capture_output=True, timeout=KCAT_TIMEOUT)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def run(args):
    ledger = Ledger()
    clock = Clock(args.drain)
    start = time.monotonic()
    threads = [
        threading.Thread(target=http_worker, args=(args, ledger, clock, i), daemon=True)
        for i in range(args.workers)
    ]
    threads.append(threading.Thread(target=kcat_worker, args=(args, ledger, clock), daemon=True))
    for thread in threads:
        thread.start()
    log(
        f"{args.workers} HTTP clients (~{args.rate:g} requests/s in all) and kcat, "
        f"{args.models} models (seed {args.seed})"
    )
    next_report = start + 10
    while any(thread.is_alive() for thread in threads):
        time.sleep(0.5)
        if not clock.stop.is_set() and os.path.exists(args.stop_file):
            clock.stopping()
            report_progress(ledger, time.monotonic() - start, "load stopped; finishing what is not acknowledged yet")
        now = time.monotonic()
        if now >= next_report:
            report_progress(ledger, now - start)
            next_report += 10
    acked, stats, unexpected = ledger.snapshot()
    report_progress(ledger, time.monotonic() - start, "done")
    with open(args.out, "w") as out:
        json.dump({"acked": acked, "stats": stats, "unexpected": unexpected, "ids": ledger.acked_ids()},
                  out, sort_keys=True)
    for text in unexpected:
        log(f"unexpected answer: {text}")
    if stats["unacknowledged"]:
        log(f"{stats['unacknowledged']} requests or chunks were never acknowledged within the drain time")
        return 1
    return 0


def report_progress(ledger, elapsed, note=""):
    acked, stats, _ = ledger.snapshot()
    total = sum(t for t, _ in acked.values())
    log(
        f"[{elapsed:5.0f} s] acknowledged {total} observations: {stats['requests']} requests, "
        f"{stats['kcat_chunks']} kcat chunks ({stats['kcat_records']} records); retried after "
        f"{stats['status_503']} x 503, {stats['timeouts']} timeouts, "
        f"{stats['connection_errors']} connection errors, {stats['kcat_failures']} kcat failures"
        + (f" ({note})" if note else "")
    )


# --- verify ---------------------------------------------------------------


def psql(args, sql):
    done = subprocess.run(
        ["psql", args.database, "-qAt", "-F", "\t", "-c", sql],
        capture_output=True, text=True, timeout=30,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def stored_offsets(args):
    group = args.group.replace("'", "''")
    topic = args.topic.replace("'", "''")
    rows = psql(
        args,
        f"SELECT partition, next_offset FROM consumer_offsets WHERE group_id = '{group}' AND topic = '{topic}'",
    )
    return {int(p): int(o) for p, o in rows}


def end_offsets(args):
    """The broker's end offset (high watermark) of every partition, by kcat."""
    query = [f"{args.topic}:{p}:-1" for p in range(args.partitions)]
    command = [*kcat(args), "-Q"]
    for q in query:
        command += ["-t", q]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    ends = {}
    for line in done.stdout.splitlines():
        # observations [2] offset 1234
        parts = line.split()
        if len(parts) == 4 and parts[2] == "offset":
            ends[int(parts[1].strip("[]"))] = int(parts[3])
    return ends


def counted_models(args):
    """Every model's counts as the model service answers them."""
    url = urllib.parse.urlsplit(args.model_service)
    counts, after = {}, None
    while True:
        query = {"limit": 1000}
        if after:
            query["after"] = after
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=HTTP_TIMEOUT)
        try:
            conn.request("GET", "/models?" + urllib.parse.urlencode(query))
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"GET /models answered {response.status}: {body[:200]!r}")
        page = json.loads(body)
        for model in page["models"]:
            counts[model["model"]] = [model["trials"], model["successes"]]
        after = page.get("next_after")
        if not after:
            return counts


def read_log(args):
    """Every record of the topic, by kcat: {id: how many records carry it},
    and the number of records without an id."""
    done = subprocess.run(
        [*kcat(args), "-t", args.topic, "-C", "-o", "beginning", "-e", "-q", "-f", "%s\n"],
        capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    copies, without = {}, 0
    for line in done.stdout.splitlines():
        try:
            record_id = json.loads(line).get("id")
        except (ValueError, AttributeError):
            record_id = None
        if record_id is None:
            without += 1
        else:
            copies[record_id] = copies.get(record_id, 0) + 1
    return copies, without


def log_summary(log):
    copies, without = log
    records = sum(copies.values()) + without
    return (
        f"; the log holds {records} records for {len(copies)} ids: "
        f"{records - len(copies) - without} copies, each to be skipped by the consumers"
        + (f" ({without} records without an id!)" if without else "")
    )


def where_it_went(acked_ids, log):
    """For a difference: which acknowledged ids the log lacks (lost before
    the consumers: the producer answered 202, or kcat said delivered, for a
    record the broker does not have) and which it holds more than once."""
    copies, without = log
    acked = set(acked_ids)
    missing = [i for i in acked_ids if i not in copies]
    unknown = [i for i in copies if i not in acked]
    lines = []
    if missing:
        lines.append(f"{len(missing)} acknowledged ids are not in the log (lost before the consumers), e.g. {missing[:5]}")
    else:
        lines.append("every acknowledged id is in the log: the difference arose in the consumers or the store")
    if unknown:
        lines.append(f"{len(unknown)} ids in the log were never acknowledged (the load gave up on them), e.g. {unknown[:5]}")
    if without:
        lines.append(f"{without} records in the log carry no id")
    return lines


def verify(args):
    with open(args.acked) as source:
        run = json.load(source)
    acked = run["acked"]
    deadline = time.monotonic() + args.timeout
    previous, counted, lag, problem = None, {}, None, None
    caught_up = False
    while True:
        try:
            ends, stored = end_offsets(args), stored_offsets(args)
            lag = {p: ends.get(p, 0) - stored.get(p, 0) for p in range(args.partitions)}
            problem = None
            if len(ends) != args.partitions:
                problem = f"the broker reported {len(ends)} partitions, not {args.partitions}"
                previous = None
            elif all(v == 0 for v in lag.values()):
                # Read after the offsets: counts commit with them, so these
                # hold every batch up to the end of the log. Read before,
                # they could miss the batches committed in between (seen on
                # a loaded machine: a stale count taken for the last).
                counted = counted_models(args)
                if counted == acked or counted == previous:
                    caught_up = True
                    break
                previous = counted
            else:
                previous = None
        except (RuntimeError, OSError, http.client.HTTPException, subprocess.TimeoutExpired, ValueError) as err:
            problem = str(err)
        if time.monotonic() > deadline:
            break
        time.sleep(2)
    if not counted:
        try:
            counted = counted_models(args)
        except (RuntimeError, OSError, http.client.HTTPException, ValueError) as err:
            problem = problem or str(err)

    log, log_error = None, None
    try:
        log = read_log(args)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        log_error = err
    models = sorted(set(acked) | set(counted))
    rows, lost, doubled, lost_s, doubled_s = [], 0, 0, 0, 0
    for model in models:
        a_t, a_s = acked.get(model, [0, 0])
        c_t, c_s = counted.get(model, [0, 0])
        d_t, d_s = c_t - a_t, c_s - a_s
        lost += max(0, -d_t)
        doubled += max(0, d_t)
        lost_s += max(0, -d_s)
        doubled_s += max(0, d_s)
        mark = "" if d_t == 0 and d_s == 0 else "  <-- " + ("lost" if d_t < 0 or d_s < 0 else "doubled")
        rows.append((model, f"{a_t}/{a_s}", f"{c_t}/{c_s}", f"{d_t:+d}/{d_s:+d}" if mark else "0", mark))
    header = ("model", "acknowledged", "counted", "difference", "")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    print()
    print("observations per model, as trials/successes:")
    for row in [header] + rows:
        print(row[0].ljust(widths[0]) + "".join("  " + v.rjust(w) for v, w in zip(row[1:4], widths[1:])) + row[4])
    total_acked = sum(acked.get(m, [0, 0])[0] for m in models)
    total_counted = sum(counted.get(m, [0, 0])[0] for m in models)
    stats = run["stats"]
    print()
    print(
        f"chaos: {len(models)} models, {total_acked} observations acknowledged "
        f"({stats['requests']} HTTP requests, {stats['kcat_records']} kcat records), "
        f"{total_counted} counted: {lost} lost, {doubled} doubled"
        + (f" (successes: {lost_s} lost, {doubled_s} doubled)" if lost_s or doubled_s else "")
        + f"; {args.actions}"
    )
    print(
        f"       clients retried after {stats['status_503']} x 503, {stats['timeouts']} timeouts, "
        f"{stats['connection_errors']} connection errors, {stats['kcat_failures']} kcat failures, "
        f"and re-sent {stats['resent']} acknowledged requests or chunks"
        + (log_summary(log) if log else f"; (the log could not be read: {log_error})")
    )
    failed = False
    if not caught_up:
        print(f"FAILED: the consumers did not catch up within {args.timeout} s: lag per partition {lag}"
              + (f"; last problem: {problem}" if problem else ""))
        failed = True
    if lost or doubled or lost_s or doubled_s:
        print("FAILED: counted differs from acknowledged (see the rows marked above)")
        if log:
            for line in where_it_went(run["ids"], log):
                print(f"        {line}")
        failed = True
    if stats.get("unexpected"):
        print(f"FAILED: {stats['unexpected']} answers were neither 202 nor 503: {run.get('unexpected')}")
        failed = True
    if stats.get("unacknowledged"):
        print(f"FAILED: {stats['unacknowledged']} requests or kcat chunks were never acknowledged")
        failed = True
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("run", help="drive the load")
    load.add_argument("--producer", required=True, help="the producer's base URL")
    load.add_argument("--brokers", required=True)
    load.add_argument("--kcat-config", help="a kcat -F file: the services' librdkafka options")
    load.add_argument("--topic", default="observations")
    load.add_argument("--stop-file", required=True, help="new load stops when this file appears")
    load.add_argument("--drain", type=float, default=180, help="seconds to keep retrying after the stop")
    load.add_argument("--seed", type=int, required=True)
    load.add_argument("--models", type=int, default=20)
    load.add_argument("--workers", type=int, default=4, help="concurrent HTTP clients")
    load.add_argument("--rate", type=float, default=40, help="HTTP requests per second, all clients together")
    load.add_argument("--resend", type=float, default=0.03,
                      help="the share of acknowledged requests and chunks sent once more")
    load.add_argument("--out", required=True, help="where to write what was acknowledged (JSON)")
    check = commands.add_parser("verify", help="wait for the pipeline to catch up, compare")
    check.add_argument("--acked", required=True, help="the file `run --out` wrote")
    check.add_argument("--model-service", required=True, help="the model service's base URL")
    check.add_argument("--database", required=True, help="Postgres URL (for the stored offsets)")
    check.add_argument("--brokers", required=True)
    check.add_argument("--kcat-config", help="a kcat -F file: the services' librdkafka options")
    check.add_argument("--topic", default="observations")
    check.add_argument("--group", default="bayes-consumer")
    check.add_argument("--partitions", type=int, required=True)
    check.add_argument("--timeout", type=float, default=180)
    check.add_argument("--actions", default="", help="what the chaos did, for the summary line")
    args = parser.parse_args()
    sys.exit(run(args) if args.command == "run" else verify(args))


if __name__ == "__main__":
    main()
