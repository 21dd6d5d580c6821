//! The `bayes` binary against a running stack (the three services
//! in-process, the test broker, the test's own database): what it prints on
//! stdout and stderr, and its exit codes, for every command and for the
//! errors a person meets (an unknown model, a bad outcome, a service that
//! is down, bad usage).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use serde_json::{json, Value};
use system_tests::Stack;
use test_support::{unique, DEADLINE};

/// `bayes` with the stack's URLs in its environment.
fn bayes(producer: &str, model: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bayes"));
    command
        .env("BAYES_PRODUCER_URL", producer)
        .env("BAYES_MODEL_URL", model)
        .env("NO_COLOR", "1");
    command
}

/// Runs `bayes args...` to its end (on a blocking thread: the stack runs on
/// this runtime).
async fn run(producer: &str, model: &str, args: &[&str]) -> Output {
    let mut command = bayes(producer, model);
    command.args(args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

async fn run_on(stack: &Stack, args: &[&str]) -> Output {
    run(&stack.producer, &stack.model, args).await
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Asserts a successful run and returns its stdout.
fn success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// Asserts exit code `code` with one `error: ...` line on stderr and
/// nothing on stdout, and returns that line.
fn failure(output: &Output, code: i32) -> String {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    assert_eq!(stdout(output), "", "stderr: {err}");
    err
}

fn error_line(output: &Output) -> String {
    let err = failure(output, 1);
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    err.trim_end().to_owned()
}

/// The value on the line of a name/value listing that starts with `name`.
fn field(listing: &str, name: &str) -> String {
    listing
        .lines()
        .find_map(|line| line.strip_prefix(name).filter(|rest| rest.starts_with(' ')))
        .unwrap_or_else(|| panic!("no {name:?} in:\n{listing}"))
        .trim()
        .to_owned()
}

/// The id in `upload <id>: ...`.
fn upload_id(line: &str) -> &str {
    line.strip_prefix("upload ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("no upload id in {line:?}"))
}

/// A child process that does not outlive a failed test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on: bound by the system, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn posted_outcomes_show_in_the_posterior_table_its_json_and_the_model_list() {
    let stack = Stack::start().await;
    let model = unique("globe");
    let out = success(&run_on(&stack, &["post", &model, "WLWWWLWLW"]).await);
    assert!(out.starts_with("accepted 1 record for "), "{out}");
    stack.model_with_trials(&model, 9).await;
    // Then two more outcomes, given as words: version 2.
    success(&run_on(&stack, &["post", &model, "w", "l"]).await);
    stack.model_with_trials(&model, 11).await;

    let table = success(&run_on(&stack, &["posterior", &model]).await);
    assert_eq!(field(&table, "model"), model);
    assert_eq!(field(&table, "successes"), "7");
    assert_eq!(field(&table, "failures"), "4");
    assert_eq!(field(&table, "trials"), "11");
    assert!(field(&table, "version").starts_with("2 ("), "{table}");

    // The table shows what the JSON says, rounded.
    let json: Value = serde_json::from_str(&success(
        &run_on(&stack, &["posterior", &model, "--json"]).await,
    ))
    .unwrap();
    assert_eq!(json["trials"], 11);
    assert!(json.get("grid").is_none_or(Value::is_null), "{json}");
    let summary = &json["summary"];
    for name in ["mean", "sd", "median"] {
        let expected = format!("{:.4}", summary[name].as_f64().unwrap());
        assert_eq!(field(&table, name), expected, "{name}");
    }
    let hpdi = format!(
        "[{:.4}, {:.4}]",
        summary["hpdi"]["lower"].as_f64().unwrap(),
        summary["hpdi"]["upper"].as_f64().unwrap()
    );
    assert_eq!(field(&table, "89% HPDI"), hpdi);

    // Another mass, and the version before the last.
    let wide = success(
        &run_on(
            &stack,
            &["posterior", &model, "--mass", "0.5", "--version", "1"],
        )
        .await,
    );
    assert_eq!(field(&wide, "trials"), "9");
    assert!(field(&wide, "50% PI").starts_with('['), "{wide}");

    let list = success(&run_on(&stack, &["models"]).await);
    let header = list.lines().next().unwrap();
    assert!(
        header.starts_with("MODEL") && header.contains("TRIALS"),
        "{list}"
    );
    let row: Vec<&str> = list
        .lines()
        .find(|line| line.starts_with(&model))
        .unwrap_or_else(|| panic!("{model} missing:\n{list}"))
        .split_whitespace()
        .collect();
    assert_eq!(&row[..5], [model.as_str(), "7", "4", "11", "2"]);
    let listed: Value =
        serde_json::from_str(&success(&run_on(&stack, &["models", "--json"]).await)).unwrap();
    let listed = listed["models"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|m| m["model"] == model.as_str() && m["trials"] == 11),
        "{listed:?}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_reaches_applied_and_the_same_file_again_fails_naming_the_first_upload() {
    let stack = Stack::start().await;
    let model = unique("tosses");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tosses.csv");
    std::fs::write(&csv, "outcome\nw\nl\nWLW\nw\n").unwrap();
    let path = csv.to_str().unwrap();

    let out = success(&run_on(&stack, &["upload", path, "--model", &model]).await);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let id = upload_id(lines[0]);
    assert!(
        lines[0].ends_with(&format!("4 rows, 6 trials, 1 model(s) ({model})")),
        "{out}"
    );
    assert_eq!(lines[1], format!("upload {id} applied: 4 rows counted"));
    // Applied means counted: the model service shows them now, no waiting.
    let table = success(&run_on(&stack, &["posterior", &model]).await);
    assert_eq!(field(&table, "successes"), "4");
    assert_eq!(field(&table, "failures"), "2");

    let again = error_line(&run_on(&stack, &["upload", path, "--model", &model]).await);
    assert!(
        again.starts_with(&format!("error: this file was uploaded as {id} at ")),
        "{again}"
    );
    assert!(again.ends_with("(409 duplicate_upload)"), "{again}");

    // Gzipped, it is still the same file to the producer: sent as it is.
    let gz = dir.path().join("tosses.csv.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&std::fs::read(&csv).unwrap()).unwrap();
    std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
    let gz = gz.to_str().unwrap();
    let again = error_line(&run_on(&stack, &["upload", gz, "--model", &model]).await);
    assert!(again.contains(&format!("uploaded as {id} ")), "{again}");

    // --force counts it once more; --no-wait returns once it is accepted.
    let out = success(
        &run_on(
            &stack,
            &["upload", gz, "--model", &model, "--force", "--no-wait"],
        )
        .await,
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_ne!(
        upload_id(&out),
        id,
        "a forced upload is a new upload: {out}"
    );
    stack.model_with_trials(&model, 12).await;

    // An invalid file names its first bad line.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "outcome\nw\nbanana\n").unwrap();
    let err = error_line(
        &run_on(
            &stack,
            &["upload", bad.to_str().unwrap(), "--model", &model],
        )
        .await,
    );
    assert!(
        err.contains("; line 3: ") && err.contains("banana"),
        "{err}"
    );
    assert!(err.ends_with("(422 invalid_csv)"), "{err}");

    let missing = dir.path().join("missing.csv");
    let err = error_line(&run_on(&stack, &["upload", missing.to_str().unwrap()]).await);
    assert!(
        err.starts_with("error: cannot read ") && err.contains("missing.csv"),
        "{err}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_experiment_prints_its_arms_its_decision_and_its_sample_ratio_check() {
    let stack = Stack::start().await;
    let (a, b) = (unique("arm-a"), unique("arm-b"));
    let id = unique("landing");
    let response = stack
        .http
        .put(format!("{}/experiments/{id}", stack.model))
        .json(&json!({"arms": [a, b], "planned_weights": [1, 1]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    success(&run_on(&stack, &["post", &a, &"W".repeat(10), &"L".repeat(90)]).await);
    success(&run_on(&stack, &["post", &b, &"W".repeat(30), &"L".repeat(70)]).await);
    stack.model_with_trials(&a, 100).await;
    stack.model_with_trials(&b, 100).await;

    let json: Value = serde_json::from_str(&success(
        &run_on(&stack, &["experiment", &id, "--json"]).await,
    ))
    .unwrap();
    let out = success(&run_on(&stack, &["experiment", &id]).await);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with(&format!("experiment {id} ")), "{out}");
    assert!(
        lines[1].starts_with("ARM") && lines[1].contains("P(BEST)"),
        "{out}"
    );
    let control: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        &control[..4],
        [a.as_str(), "(control)", "100", "10"],
        "{out}"
    );
    let arm: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(&arm[..3], [b.as_str(), "100", "30"], "{out}");
    let prob_best = format!("{:.4}", json["results"][1]["prob_best"].as_f64().unwrap());
    assert_eq!(arm[4], prob_best, "{out}");
    let decision = json["decision"]["decision"]
        .as_str()
        .unwrap()
        .replace('_', " ");
    let line = lines.iter().find(|l| l.starts_with("decision: ")).unwrap();
    assert!(line.starts_with(&format!("decision: {decision}")), "{out}");
    assert!(
        line.ends_with(json["decision"]["reason"].as_str().unwrap()),
        "{out}"
    );
    let srm = lines
        .iter()
        .find(|l| l.starts_with("sample ratio: "))
        .unwrap();
    assert!(
        srm.contains("as planned"),
        "equal trials, equal weights: {out}"
    );

    let err = error_line(&run_on(&stack, &["experiment", "no-such-experiment"]).await);
    assert!(err.ends_with("(404 experiment_not_found)"), "{err}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_services_errors_are_one_line_and_exit_code_one() {
    let stack = Stack::start().await;
    let model = unique("nobody");
    let err = error_line(&run_on(&stack, &["posterior", &model]).await);
    assert!(
        err.contains(&model) && err.ends_with("(404 model_not_found)"),
        "{err}"
    );

    let err = error_line(&run_on(&stack, &["post", "globe", "WLX"]).await);
    assert!(err.ends_with("(422 invalid_observation)"), "{err}");
    let err = error_line(&run_on(&stack, &["post", "Not A Model", "w"]).await);
    assert!(err.contains("(422 "), "{err}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_does_not_answer_is_named_with_its_url() {
    let down = format!("http://127.0.0.1:{}", closed_port());
    let err = error_line(&run(&down, &down, &["post", "globe", "w"]).await);
    assert!(
        err.starts_with(&format!("error: cannot reach the producer at {down}: ")),
        "{err}"
    );
    let err = error_line(&run(&down, &down, &["models"]).await);
    assert!(
        err.starts_with(&format!(
            "error: cannot reach the model service at {down}: "
        )),
        "{err}"
    );
    // Flags win over the environment.
    let flag = format!("--model-url={down}");
    let err = error_line(
        &run(
            "http://127.0.0.1:1",
            "http://127.0.0.1:1",
            &[&flag, "posterior", "globe"],
        )
        .await,
    );
    assert!(err.contains(&format!("at {down}: ")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_exits_two_with_clap_s_message() {
    let url = "http://127.0.0.1:1";
    for args in [
        &["posterior"][..],
        &["post", "globe"],
        &["frobnicate"],
        &["posterior", "globe", "--version", "minus-one"],
        &["--model-url", "not a url", "models"],
    ] {
        let out = run(url, url, args).await;
        let err = failure(&out, 2);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(
            err.contains("Usage:") || err.contains("--help"),
            "{args:?}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_prints_the_posterior_again_when_the_model_changes() {
    let stack = Stack::start().await;
    let model = unique("watched");
    success(&run_on(&stack, &["post", &model, "w"]).await);
    stack.model_with_trials(&model, 1).await;

    let mut child = KillOnDrop(
        bayes(&stack.producer, &stack.model)
            .args(["watch", &model])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + DEADLINE;
    // Reads lines until one says `trials <n>`, failing at the deadline.
    let wait_for_trials = |n: u64| {
        let wanted = n.to_string();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("watch never showed {n} trials: {e}"));
            if line.starts_with("trials ") && line.split_whitespace().nth(1) == Some(&wanted) {
                break;
            }
        }
    };
    tokio::task::block_in_place(|| wait_for_trials(1));
    success(&run_on(&stack, &["post", &model, "w", "l"]).await);
    tokio::task::block_in_place(|| wait_for_trials(3));

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(stderr, "");
    stack.stop().await;
}

/// Runs `bayes args...` with `BAYES_KEY=key` (none: no key).
async fn run_with_key(stack: &Stack, key: Option<&str>, args: &[&str]) -> Output {
    let mut command = bayes(&stack.producer, &stack.model);
    command.args(args);
    if let Some(key) = key {
        command.env("BAYES_KEY", key);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked_and_every_command_sends_bayes_key() {
    const ADMIN: &str = "the-cli-tests-bootstrap-admin-key-0123456789";
    let stack = Stack::start_with(test_support::broker::TestBroker::start(), |s| {
        s.auth.required = true;
        s.auth.bootstrap_admin_key = Some(ADMIN.to_owned().into());
    })
    .await;
    let refused = error_line(&run_with_key(&stack, None, &["models"]).await);
    assert!(refused.ends_with("(401 unauthorized)"), "{refused}");

    let created = run_with_key(
        &stack,
        Some(ADMIN),
        &["keys", "create", "--name", "reader", "--scope", "read"],
    )
    .await;
    let token = success(&created).trim().to_owned();
    assert!(token.starts_with("bk_"), "{token}");
    assert_eq!(success(&created).lines().count(), 1);
    assert!(
        stderr(&created).contains("shown this once"),
        "{}",
        stderr(&created)
    );

    test_support::eventually("the new key reads", async || {
        let output = run_with_key(&stack, Some(&token), &["models"]).await;
        output.status.success().then_some(())
    })
    .await;
    // A read key cannot write.
    let line = error_line(&run_with_key(&stack, Some(&token), &["post", "globe", "w"]).await);
    assert!(line.ends_with("(403 insufficient_scope)"), "{line}");

    let listing = success(&run_with_key(&stack, Some(ADMIN), &["keys", "list"]).await);
    assert!(
        listing.contains("reader") && listing.contains("read"),
        "{listing}"
    );
    assert!(!listing.contains(&token[16..]), "{listing}");

    let revoked = success(&run_with_key(&stack, Some(ADMIN), &["keys", "revoke", "reader"]).await);
    assert!(revoked.starts_with("revoked key "), "{revoked}");
    test_support::eventually("the revoked key is refused", async || {
        let output = run_with_key(&stack, Some(&token), &["models"]).await;
        (output.status.code() == Some(1)).then_some(())
    })
    .await;
    let line = error_line(&run_with_key(&stack, Some(ADMIN), &["keys", "revoke", "reader"]).await);
    assert!(line.contains("no key in force"), "{line}");
    stack.stop().await;
}
