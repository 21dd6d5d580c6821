//! Kafka over TLS and SASL, as every managed Kafka requires: one Apache
//! Kafka broker of this module's own (started once, shared by its tests)
//! with a SASL_SSL listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; the SCRAM
//! users made when its storage is formatted) and an SSL listener that
//! requires client certificates (mutual TLS), under a private CA the test
//! makes. Observations travel producer -> broker -> consumer over each, and
//! Kafka's console producer (a client properties file) and kcat (`-F`) write
//! records that are counted and the console consumer reads back. Refused credentials, a CA that does not match,
//! an expired and a missing client certificate each show in `/readyz` (the
//! producer's and the consumer's admin server), naming the cause, and in
//! `kafka_client_errors_total`; never a 202, never a secret.
//!
//! It needs Java and the Kafka jars (`scripts/kafka.sh install`); without
//! them it fails and says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use platform::settings::Settings;
use serde_json::Value;
use system_tests::{run_with_input, Stack};
use test_support::broker::TestBroker;
use test_support::certs::{CertFiles, CertificateAuthority};
use test_support::kafka_process::{BrokerTls, KafkaProcess, Listener, SaslMechanism};
use test_support::{eventually, unique};

/// The broker and the files its clients need.
#[derive(Debug)]
struct Secured {
    kafka: KafkaProcess,
    /// The CA that signed the broker's certificate and the clients'.
    ca: PathBuf,
    /// A CA that signed neither.
    stranger_ca: PathBuf,
    client: CertFiles,
    expired: CertFiles,
}

const SASL_SSL: &str = "sasl_ssl";
const MTLS: &str = "mtls";

const PLAIN: (&str, &str) = ("alice", "alice-Pw-1");
const SCRAM_256: (&str, &str) = ("bob", "bob-Pw-256");
const SCRAM_512: (&str, &str) = ("carol", "carol-Pw-512");

static SECURED: OnceLock<Secured> = OnceLock::new();

/// The shared broker, started by the first test that asks (the others wait).
async fn secured() -> &'static Secured {
    tokio::task::spawn_blocking(|| SECURED.get_or_init(start_secured))
        .await
        .unwrap()
}

/// A test's turn: its share of the machine (see `system_tests`), then the
/// shared broker. Only tests take it; the helpers they call use
/// [`secured`], so no test asks for a second share while holding one.
async fn turn() -> (tokio::sync::RwLockReadGuard<'static, ()>, &'static Secured) {
    let machine = system_tests::share_the_machine().await;
    (machine, secured().await)
}

fn start_secured() -> Secured {
    let builder = KafkaProcess::builder();
    let tls = builder.dir().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ca = CertificateAuthority::new("ours test CA");
    let ca_file = ca.write(&tls.join("ours-ca.pem"));
    let stranger_ca =
        CertificateAuthority::new("stranger test CA").write(&tls.join("stranger-ca.pem"));
    let server = ca.server(&["localhost", "127.0.0.1"]).write(&tls, "broker");
    let client = ca.client("bayes-client").write(&tls, "client");
    let expired = ca.expired_client("bayes-expired").write(&tls, "expired");
    let kafka = builder
        .listener(Listener::sasl_ssl(
            SASL_SSL,
            &[
                SaslMechanism::Plain,
                SaslMechanism::ScramSha256,
                SaslMechanism::ScramSha512,
            ],
        ))
        .listener(Listener::ssl(MTLS).require_client_certificate())
        .tls(BrokerTls {
            key_and_cert: server.key_and_cert,
            trusted_ca: ca_file.clone(),
        })
        .plain_user(PLAIN.0, PLAIN.1)
        .scram_user(SaslMechanism::ScramSha256, SCRAM_256.0, SCRAM_256.1)
        .scram_user(SaslMechanism::ScramSha512, SCRAM_512.0, SCRAM_512.1)
        .start();
    Secured {
        kafka,
        ca: ca_file,
        stranger_ca,
        client,
        expired,
    }
}

type Options = Vec<(&'static str, String)>;

fn sasl_ssl(mechanism: SaslMechanism, (user, password): (&str, &str), ca: &Path) -> Options {
    vec![
        ("security.protocol", "SASL_SSL".into()),
        ("sasl.mechanism", mechanism.as_str().into()),
        ("sasl.username", user.into()),
        ("sasl.password", password.into()),
        ("ssl.ca.location", ca.display().to_string()),
    ]
}

fn mtls(client: Option<&CertFiles>, ca: &Path) -> Options {
    let mut options = vec![
        ("security.protocol", "SSL".into()),
        ("ssl.ca.location", ca.display().to_string()),
    ];
    if let Some(client) = client {
        options.push((
            "ssl.certificate.location",
            client.cert.display().to_string(),
        ));
        options.push(("ssl.key.location", client.key.display().to_string()));
    }
    options
}

/// Settings of the services that reach the broker on `listener` with `options`.
fn configure(secured: &Secured, listener: &str, options: &Options, settings: &mut Settings) {
    settings.kafka.brokers = secured.kafka.bootstrap_of(listener);
    for (key, value) in options {
        settings.kafka.librdkafka.insert(key, value.clone());
    }
    settings.producer.ack_timeout = Duration::from_secs(3);
}

/// The whole stack on `listener`; topics made on the internal listener.
async fn stack(secured: &Secured, listener: &str, options: Options) -> Stack {
    let broker = TestBroker::external(secured.kafka.bootstrap());
    Stack::start_with(broker, |settings| {
        configure(secured, listener, &options, settings)
    })
    .await
}

async fn observations_travel_end_to_end(listener: &str, options: Options) {
    let secured = secured().await;
    let stack = stack(secured, listener, options).await;
    // Ready first: the POST waits `producer.ack_timeout` (3 s here) at most,
    // less than a TLS connection can take on a busy machine.
    let http = &stack.http;
    eventually("the producer is ready over TLS", async || {
        let response = http
            .get(format!("{}/readyz", stack.producer))
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    assert_eq!(stack.post("globe", "WLW").await.status(), 202);
    let globe = stack.model_with_trials("globe", 3).await;
    assert_eq!(globe["successes"], 2, "{globe}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn observations_travel_over_sasl_ssl_with_plain_scram_sha_256_and_scram_sha_512() {
    let (_machine, secured) = turn().await;
    for (mechanism, user) in [
        (SaslMechanism::Plain, PLAIN),
        (SaslMechanism::ScramSha256, SCRAM_256),
        (SaslMechanism::ScramSha512, SCRAM_512),
    ] {
        eprintln!("SASL_SSL with {mechanism:?}");
        observations_travel_end_to_end(SASL_SSL, sasl_ssl(mechanism, user, &secured.ca)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn observations_travel_over_mutual_tls_with_a_client_certificate() {
    let (_machine, secured) = turn().await;
    observations_travel_end_to_end(MTLS, mtls(Some(&secured.client), &secured.ca)).await;
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafkas_console_tools_and_kcat_work_over_tls_with_a_client_properties_file() {
    let (_machine, secured) = turn().await;
    let ca = secured.ca.clone();
    let stack = stack(
        secured,
        SASL_SSL,
        sasl_ssl(SaslMechanism::ScramSha512, SCRAM_512, &ca),
    )
    .await;
    let topic = stack.settings.kafka.topic.clone();
    let dir = tempdir();

    let java = java_client_properties(&dir, &ca);
    let console = repo().join("scripts/kafka-console-producer.sh");
    let args: Vec<String> = [
        "--bootstrap-server",
        &secured.kafka.bootstrap_of(SASL_SSL),
        "--topic",
        &topic,
        "--command-config",
        &java.display().to_string(),
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=:",
    ]
    .map(str::to_owned)
    .to_vec();
    tokio::task::spawn_blocking(move || run_with_input(&console, &args, &["coin:W"]))
        .await
        .unwrap();

    // kcat: the services' options (BAYES__KAFKA__LIBRDKAFKA__*, the password
    // from a file) in a file for -F, as scripts/lib/kafka.sh writes it for
    // the chaos run. PLAIN, since Debian 12's kcat links librdkafka 2.0.2,
    // whose SCRAM a Kafka 4 broker refuses (librdkafka fixed it in 2.6.1;
    // the services build 2.12).
    let kcat = dir.join("kcat.conf");
    let password = dir.join("password");
    std::fs::write(&password, format!("{}\n", PLAIN.1)).unwrap();
    let mut write_config = Command::new("bash");
    write_config
        .arg("-c")
        .arg(r#"source scripts/lib/kafka.sh && kafka_librdkafka_config "$1""#)
        .arg("bash")
        .arg(&kcat)
        .current_dir(repo());
    for (key, value) in sasl_ssl(SaslMechanism::Plain, PLAIN, &ca) {
        let name = format!(
            "BAYES__KAFKA__LIBRDKAFKA__{}",
            key.replace('.', "_").to_uppercase()
        );
        if key == "sasl.password" {
            write_config.env(format!("{name}_FILE"), &password);
        } else {
            write_config.env(name, value);
        }
    }
    let written = write_config.output().unwrap();
    assert!(
        written.status.success(),
        "kafka_librdkafka_config: {}",
        String::from_utf8_lossy(&written.stderr)
    );
    let lines = std::fs::read_to_string(&kcat).unwrap();
    assert!(
        lines.contains(&format!("sasl.password={}\n", PLAIN.1)),
        "{lines}"
    );
    let args: Vec<String> = [
        "-b",
        &secured.kafka.bootstrap_of(SASL_SSL),
        "-F",
        &kcat.display().to_string(),
        "-t",
        &topic,
        "-P",
        "-K",
        ":",
    ]
    .map(str::to_owned)
    .to_vec();
    tokio::task::spawn_blocking(move || run_with_input(Path::new("kcat"), &args, &["coin:L"]))
        .await
        .unwrap();

    let coin = stack.model_with_trials("coin", 2).await;
    assert_eq!(coin["successes"], 1, "{coin}");

    // Kafka's console consumer reads both back with the same file.
    let bootstrap = secured.kafka.bootstrap_of(SASL_SSL);
    let config = java.display().to_string();
    let printed = run_tool(
        "kafka-console-consumer.sh",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            &topic,
            "--command-config",
            &config,
            "--from-beginning",
            "--max-messages",
            "2",
            "--timeout-ms",
            "30000",
        ],
    )
    .await;
    assert_eq!(
        printed.lines().count(),
        2,
        "the console consumer read {printed:?}"
    );
    stack.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A client properties file for Kafka's Java tools: SCRAM-SHA-512 in a JAAS
/// line and a PEM trust store, as docs/operations.md shows.
fn java_client_properties(dir: &Path, ca: &Path) -> PathBuf {
    let java = dir.join("client.properties");
    std::fs::write(
        &java,
        format!(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{}\" password=\"{}\";\n\
             ssl.truststore.type=PEM\nssl.truststore.location={}\n",
            SCRAM_512.0,
            SCRAM_512.1,
            ca.display()
        ),
    )
    .unwrap();
    java
}

/// The perf tools (a test of their own, so that their JVMs run beside the
/// console tools' rather than after them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafkas_perf_tools_work_over_tls_with_a_client_properties_file() {
    let (_machine, secured) = turn().await;
    let dir = tempdir();
    let java = java_client_properties(&dir, &secured.ca);
    // A topic of their own: their records are no observations.
    let perf = unique("perf");
    TestBroker::external(secured.kafka.bootstrap())
        .create_topic(&perf, 1)
        .await;
    let bootstrap = secured.kafka.bootstrap_of(SASL_SSL);
    let config = java.display().to_string();
    let produced = run_tool(
        "kafka-producer-perf-test.sh",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            &perf,
            "--command-config",
            &config,
            "--num-records",
            "10",
            "--record-size",
            "20",
            "--throughput",
            "-1",
        ],
    )
    .await;
    assert!(
        produced.contains("10 records sent"),
        "the producer perf test printed {produced:?}"
    );
    let consumed = run_tool(
        "kafka-consumer-perf-test.sh",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            &perf,
            "--command-config",
            &config,
            "--messages",
            "10",
            "--timeout",
            "30000",
        ],
    )
    .await;
    // Its header, then `start.time, end.time, MB, MB.sec, nMsg, ...`.
    let messages = consumed
        .lines()
        .next_back()
        .and_then(|line| line.split(',').nth(4))
        .map(str::trim);
    assert_eq!(
        messages,
        Some("10"),
        "the consumer perf test printed {consumed:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `scripts/<script>` with `args` and returns what it printed, failing
/// with its output unless it exits 0.
async fn run_tool(script: &str, args: &[&str]) -> String {
    let program = repo().join("scripts").join(script);
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script} failed ({}): {printed}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    printed
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("kafka-tls-clients"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A producer and a consumer with settings the broker refuses: each
/// `/readyz` answers 503 naming `cause`, a POST is refused with 503, the
/// metric counts `kind`, and no answer shows `secret`.
async fn refused_visibly(listener: &str, options: Options, cause: &str, kind: &str, secret: &str) {
    let secured = secured().await;
    let broker = TestBroker::external(secured.kafka.bootstrap());
    let stack = Stack::start_with(broker, |settings| {
        configure(secured, listener, &options, settings)
    })
    .await;
    let mut settings = stack.settings.clone();
    settings.consumer.admin_port = 0;
    let consumer = consumer::Consumer::build(settings).await.unwrap();
    let admin = format!("http://{}", consumer.admin_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(consumer.run_until(async {
        let _ = stopped.await;
    }));

    for base in [&stack.producer, &admin] {
        let body = not_ready_naming(&stack.http, base, cause).await;
        assert!(
            !body.to_string().contains(secret),
            "{base}/readyz shows a secret: {body}"
        );
    }
    let started = Instant::now();
    let status = stack.post("globe", "W").await.status();
    assert_eq!(status, 503, "a refused client must not acknowledge");
    assert!(started.elapsed() < Duration::from_secs(10));
    for base in [&stack.producer, &admin] {
        let metrics = stack
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("kafka_client_errors_total")
                    && l.contains(&format!("kind=\"{kind}\""))),
            "{base}/metrics counts no {kind} error:\n{metrics}"
        );
        assert!(!metrics.contains(secret), "{base}/metrics shows a secret");
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    stack.stop().await;
}

/// Polls `{base}/readyz` until it answers 503 with a check naming `cause`.
async fn not_ready_naming(http: &reqwest::Client, base: &str, cause: &str) -> Value {
    eventually(&format!("{base}/readyz names {cause:?}"), async || {
        let response = http.get(format!("{base}/readyz")).send().await.ok()?;
        let status = response.status();
        let body: Value = response.json().await.ok()?;
        let named = body["checks"]
            .as_array()?
            .iter()
            .any(|c| c["error"].as_str().is_some_and(|e| e.contains(cause)));
        (status == 503 && named).then_some(body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_password_is_refused_visibly() {
    let (_machine, secured) = turn().await;
    let ca = secured.ca.clone();
    let options = sasl_ssl(
        SaslMechanism::ScramSha512,
        (SCRAM_512.0, "not-the-Pw-9"),
        &ca,
    );
    refused_visibly(
        SASL_SSL,
        options,
        "authentication failed",
        "authentication",
        "not-the-Pw-9",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ca_that_did_not_sign_the_brokers_certificate_is_refused_visibly() {
    let (_machine, secured) = turn().await;
    let options = sasl_ssl(SaslMechanism::Plain, PLAIN, &secured.stranger_ca);
    refused_visibly(SASL_SSL, options, "TLS handshake failed", "tls", PLAIN.1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_client_certificate_is_refused_visibly() {
    let (_machine, secured) = turn().await;
    let options = mtls(Some(&secured.expired), &secured.ca);
    refused_visibly(MTLS, options, "TLS handshake failed", "tls", "PRIVATE KEY").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_client_certificate_is_refused_visibly() {
    let (_machine, secured) = turn().await;
    let options = mtls(None, &secured.ca);
    refused_visibly(MTLS, options, "TLS handshake failed", "tls", "PRIVATE KEY").await;
}

/// Not a test but a measurement (docs/operations.md quotes it): how long a
/// producer takes from its start to its first ready `/readyz` over
/// PLAINTEXT, SASL_SSL (SCRAM-SHA-512) and mutual TLS, 11 runs each after
/// a warm-up, printed. Run with
/// `cargo test -p system-tests --test system -- --ignored --nocapture kafka_tls::start_to_ready`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a test"]
async fn start_to_ready_over_plaintext_sasl_ssl_and_mutual_tls() {
    let (_machine, secured) = turn().await;
    let broker = TestBroker::external(secured.kafka.bootstrap());
    let (test_db, _db) = test_support::database::TestDatabase::create()
        .await
        .unwrap();
    let topic = unique("start");
    broker.create_topic(&topic, 1).await;
    let variants: [(&str, Option<&str>, Options); 3] = [
        ("PLAINTEXT", None, Vec::new()),
        (
            "SASL_SSL (SCRAM-SHA-512)",
            Some(SASL_SSL),
            sasl_ssl(SaslMechanism::ScramSha512, SCRAM_512, &secured.ca),
        ),
        (
            "SSL (mutual TLS)",
            Some(MTLS),
            mtls(Some(&secured.client), &secured.ca),
        ),
    ];
    let http = reqwest::Client::new();
    // Rounds of one start per variant, in turn, so that a busy moment of the
    // machine weighs on all three alike; the first round warms the broker's
    // JIT and the test's own code up and is not counted.
    let runs = 11;
    let mut times = vec![Vec::new(); variants.len()];
    for round in 0..=runs {
        for ((name, listener, options), times) in variants.iter().zip(&mut times) {
            let mut settings = Settings::default();
            settings.database = test_db.settings.clone();
            settings.kafka.topic = topic.clone();
            settings.kafka.create_topics = false;
            settings.producer.port = 0;
            match listener {
                Some(listener) => configure(secured, listener, options, &mut settings),
                None => settings.kafka.brokers = secured.kafka.bootstrap(),
            }
            let started = Instant::now();
            let app = producer::Application::build(settings).await.unwrap();
            let base = format!("http://127.0.0.1:{}", app.port());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let running = tokio::spawn(app.run_until_stopped(async {
                let _ = stopped.await;
            }));
            eventually(&format!("{name}: the producer is ready"), async || {
                let response = http.get(format!("{base}/readyz")).send().await.ok()?;
                (response.status() == 200).then_some(())
            })
            .await;
            if round > 0 {
                times.push(started.elapsed());
            }
            let _ = stop.send(());
            running.await.unwrap().unwrap();
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for ((name, _, _), times) in variants.iter().zip(&mut times) {
        times.sort();
        println!(
            "{name:<26} start to ready over {runs} runs: median {:.0} ms, min {:.0} ms, max {:.0} ms",
            ms(times[runs / 2]),
            ms(times[0]),
            ms(times[runs - 1])
        );
    }
}
