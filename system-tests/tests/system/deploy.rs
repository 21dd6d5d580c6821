//! Guards compose.yaml, which cannot run here (no Docker engine): it must
//! parse, name every service of the stack, build each application from a
//! binary the workspace has, and set only environment variables that the
//! settings code reads, so the two cannot drift apart. The kafka service's
//! settings are run through a local Apache Kafka of the same version (a
//! broker of the test's own, on free ports): it must start with them, answer,
//! and know every one of them. The runtime image installs every library the
//! binaries link (OpenSSL, for Kafka's TLS).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use platform::settings::{Settings, ENV_PREFIX, ENV_SEPARATOR};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_yaml_ng::Value;
use test_support::broker::TestBroker;
use test_support::kafka_process::KafkaProcess;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(repo().join("compose.yaml")).unwrap();
    let mut value: Value = serde_yaml_ng::from_str(&text).unwrap();
    value.apply_merge().unwrap();
    value
}

fn services(compose: &Value) -> BTreeMap<String, Value> {
    serde_yaml_ng::from_value(compose["services"].clone()).unwrap()
}

/// A service's environment (the mapping form), numbers as the container sees
/// them: as their text.
fn environment(service: &Value) -> BTreeMap<String, String> {
    let env: BTreeMap<String, Value> = match &service["environment"] {
        Value::Null => BTreeMap::new(),
        env => serde_yaml_ng::from_value(env.clone()).unwrap(),
    };
    env.into_iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                other => panic!("{key}: {other:?} is no string or number"),
            };
            (key, text)
        })
        .collect()
}

const APPLICATIONS: [&str; 3] = ["producer", "consumer", "model-service"];

#[test]
fn compose_names_every_service_of_the_stack() {
    let services = services(&compose());
    for name in [
        "kafka",
        "kafka-init",
        "postgres",
        "producer",
        "consumer",
        "model-service",
    ] {
        assert!(
            services.contains_key(name),
            "compose.yaml has no service {name}"
        );
    }
    assert!(services["kafka"]["image"]
        .as_str()
        .unwrap()
        .starts_with("apache/kafka:"));
    assert!(repo().join("Dockerfile").is_file());
}

/// The Kafka version `scripts/kafka/pom.xml` resolves for local runs and tests.
fn local_kafka_version() -> String {
    let pom = std::fs::read_to_string(repo().join("scripts/kafka/pom.xml")).unwrap();
    let start = pom
        .find("<kafka.version>")
        .expect("the POM names kafka.version")
        + "<kafka.version>".len();
    let end = start + pom[start..].find("</kafka.version>").unwrap();
    pom[start..end].trim().to_owned()
}

#[test]
fn compose_runs_the_kafka_version_the_local_scripts_and_tests_run() {
    let version = local_kafka_version();
    assert!(
        version.split('.').count() == 3 && version.split('.').all(|n| n.parse::<u32>().is_ok()),
        "kafka.version {version:?} is not a release number"
    );
    let services = services(&compose());
    for service in ["kafka", "kafka-init"] {
        assert_eq!(
            services[service]["image"].as_str(),
            Some(format!("apache/kafka:{version}").as_str()),
            "compose.yaml's {service} runs another Kafka than scripts/kafka/pom.xml"
        );
    }
}

#[test]
fn the_dockerfile_copies_the_manifest_of_every_workspace_member() {
    let manifest = config::Config::builder()
        .add_source(config::File::from(repo().join("Cargo.toml")))
        .build()
        .unwrap();
    let members = manifest.get_array("workspace.members").unwrap();
    assert!(members.len() >= 5, "{members:?}");
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    for member in members {
        let member = member.into_string().unwrap();
        assert!(
            dockerfile.contains(&format!("COPY {member}/Cargo.toml {member}/")),
            "the Dockerfile's dependency layer misses {member}/Cargo.toml"
        );
    }
}

/// Packages every `debian:bookworm-slim` has: the C library, libgcc, zlib.
const BASE_IMAGE_PACKAGES: [&str; 3] = ["libc6", "libgcc-s1", "zlib1g"];

/// The packages the Dockerfile's last stage (the runtime image) installs.
fn runtime_packages() -> BTreeSet<String> {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let runtime = dockerfile
        .rsplit_once("\nFROM ")
        .expect("the Dockerfile has a runtime stage")
        .1
        .replace("\\\n", " ");
    runtime
        .lines()
        .filter_map(|line| line.split_once("apt-get install").map(|(_, rest)| rest))
        .flat_map(|rest| {
            rest.split("&&")
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .filter(|word| !word.starts_with('-'))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The Debian package that holds `library` (a path `ldd` printed).
fn package_of(library: &str) -> String {
    let candidates = [
        library.to_owned(),
        format!("/usr{library}"),
        library.trim_start_matches("/usr").to_owned(),
    ];
    for path in candidates {
        let out = std::process::Command::new("dpkg")
            .args(["-S", &path])
            .output();
        if let Some(out) = out.ok().filter(|o| o.status.success()) {
            let text = String::from_utf8_lossy(&out.stdout);
            let package = text.split(':').next().unwrap_or_default().trim();
            return package.to_owned();
        }
    }
    panic!("no Debian package holds {library} (dpkg -S)");
}

/// This test binary links the same native libraries as the services: the
/// workspace builds rdkafka (and so librdkafka and its TLS) once, with one
/// set of features, for every crate.
#[test]
fn the_runtime_image_installs_every_library_the_binaries_link() {
    let exe = std::env::current_exe().unwrap();
    let ldd = std::process::Command::new("ldd")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(ldd.status.success(), "ldd {}", exe.display());
    let text = String::from_utf8_lossy(&ldd.stdout);
    let libraries: Vec<&str> = text
        .lines()
        .filter_map(|line| line.split_once(" => ")?.1.split_whitespace().next())
        .filter(|path| path.starts_with('/'))
        .collect();
    assert!(
        libraries.iter().any(|l| l.contains("libssl")),
        "the binaries link no OpenSSL, so Kafka has no TLS: build rdkafka with the `ssl` feature ({text})"
    );
    let installed = runtime_packages();
    assert!(
        installed.contains("ca-certificates"),
        "the runtime image has no public CAs for Kafka's TLS: install ca-certificates"
    );
    let missing: BTreeSet<String> = libraries
        .iter()
        .map(|l| package_of(l))
        .filter(|p| !BASE_IMAGE_PACKAGES.contains(&p.as_str()) && !installed.contains(p))
        .collect();
    assert!(
        missing.is_empty(),
        "the binaries link libraries of {missing:?}, which the Dockerfile's runtime stage does not install ({installed:?})"
    );
}

#[test]
fn every_application_runs_a_binary_of_the_workspace_and_has_a_health_check() {
    let services = services(&compose());
    for app in APPLICATIONS {
        let service = &services[app];
        assert_eq!(
            service["build"].as_str(),
            Some("."),
            "{app} builds from the Dockerfile"
        );
        let command = service["command"][0].as_str().unwrap();
        assert!(
            repo().join(command).join("src/main.rs").is_file(),
            "{app} runs {command}, which is no binary here"
        );
        assert!(
            service["healthcheck"]["test"].as_sequence().is_some(),
            "{app} has no health check"
        );
        assert!(
            !service["depends_on"].is_null() || app == "model-service",
            "{app} starts in no order"
        );
    }
}

#[test]
fn every_variable_compose_sets_is_a_setting_the_services_read() {
    let services = services(&compose());
    let config_dir = repo().join("config").to_string_lossy().into_owned();
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    let mut checked = 0;
    for app in APPLICATIONS {
        let env = environment(&services[app]);
        let ours: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .collect();
        assert!(!ours.is_empty(), "{app} sets no {prefix} variable");
        // All together, as the container sees them: unknown names are errors
        // (the settings refuse unknown fields), bad values too.
        let mut all = ours.clone();
        all.push(("BAYES_CONFIG_DIR".to_owned(), config_dir.clone()));
        let settings = Settings::load_from(all).unwrap_or_else(|e| panic!("{app}: {e}"));
        assert_ne!(as_value(&settings), as_value(&Settings::default()));
        // Each one alone must change something, or it names nothing real.
        for (key, value) in ours {
            let path: Vec<String> = key[prefix.len()..]
                .split(ENV_SEPARATOR)
                .map(str::to_lowercase)
                .collect();
            let one = Settings::load_from([
                (key.clone(), value.clone()),
                ("BAYES_CONFIG_DIR".to_owned(), config_dir.clone()),
            ])
            .unwrap_or_else(|e| panic!("{app}: {key}: {e}"));
            let default_value = default_of(&path);
            assert!(
                as_value(&one) != as_value(&Settings::default())
                    || default_value.as_deref() == Some(value.as_str()),
                "{app}: {key}={value} changes no setting"
            );
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} variables checked");
}

/// Settings as a JSON value: every field compared, including ones added later.
fn as_value(settings: &Settings) -> serde_json::Value {
    serde_json::to_value(settings).expect("settings serialize")
}

/// The default value of a setting, by its path, as config/default.toml gives it.
fn default_of(path: &[String]) -> Option<String> {
    let file = config::File::from(repo().join("config/default.toml"));
    let defaults = config::Config::builder().add_source(file).build().ok()?;
    defaults.get_string(&path.join(".")).ok()
}

// compose.yaml's Kafka settings, run through a local Apache Kafka of the same
// version. The apache/kafka image turns its `KAFKA_*` environment into
// server.properties (Apache Kafka's docker/resources: `configureDefaults`
// fills in what is unset, `configure` derives the listeners from the
// advertised ones when unset, and the `utility render-properties` step names
// each property), and the broker accepts any key without a word (4.4 logs no
// "supplied but are not used" warning for a broker). So a misspelled
// variable would be ignored silently: the test starts a broker with exactly
// those properties and looks each key up in the configuration it logs.

/// What the image sets when the environment leaves it unset
/// (`configureDefaults`). `CLUSTER_ID` is no property: the storage is
/// formatted with a cluster id of the script's.
const IMAGE_DEFAULTS: [(&str, &str); 14] = [
    ("KAFKA_NODE_ID", "1"),
    (
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
        "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
    ),
    (
        "KAFKA_LISTENERS",
        "PLAINTEXT://localhost:29092,CONTROLLER://localhost:29093,PLAINTEXT_HOST://0.0.0.0:9092",
    ),
    (
        "KAFKA_ADVERTISED_LISTENERS",
        "PLAINTEXT://localhost:29092,PLAINTEXT_HOST://localhost:9092",
    ),
    ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
    ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"),
    ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1"),
    ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1"),
    ("KAFKA_PROCESS_ROLES", "broker,controller"),
    ("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:29093"),
    ("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT"),
    ("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER"),
    ("KAFKA_LOG_DIRS", "/tmp/kraft-combined-logs"),
    ("CLUSTER_ID", "5L6g3nShT-eMCtK--X86sw"),
];

/// `KAFKA*` variables the image passes to the JVM or its scripts rather than
/// to server.properties (`kafka-propertiesSpec.json`, spelled as there).
const NOT_PROPERTIES: [&str; 10] = [
    "KAFKA_VERSION",
    "KAFKA_HEAP_OPT",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
];

/// The property the image makes of an environment variable, as its
/// `render-properties` does: the `KAFKA` prefix and the character after it
/// dropped, then each `_` between two other characters (left to right, not
/// overlapping) becomes `.`, `___` becomes `-`, `__` becomes `_`, all in lower case.
fn property_name(variable: &str) -> Option<String> {
    if !variable.starts_with("KAFKA") || NOT_PROPERTIES.contains(&variable) {
        return None;
    }
    let mut chars: Vec<char> = variable.chars().skip("KAFKA".len() + 1).collect();
    let mut i = 0;
    while i + 2 < chars.len() {
        if chars[i] != '_' && chars[i + 1] == '_' && chars[i + 2] != '_' {
            chars[i + 1] = '.';
            i += 3;
        } else {
            i += 1;
        }
    }
    let name: String = chars.into_iter().collect();
    Some(name.replace("___", "-").replace("__", "_").to_lowercase())
}

#[test]
fn kafka_variables_become_properties_as_the_image_names_them() {
    for (variable, property) in [
        ("KAFKA_NODE_ID", Some("node.id")),
        (
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            Some("listener.security.protocol.map"),
        ),
        (
            "KAFKA_AUTO_CREATE_TOPICS_ENABLE",
            Some("auto.create.topics.enable"),
        ),
        ("KAFKA_LOG_CLEANER___THREADS", Some("log.cleaner-threads")),
        ("KAFKA_SOME__NAME", Some("some_name")),
        ("KAFKA_HEAP_OPT", None),
        ("KAFKA_OPTS", None),
        ("CLUSTER_ID", None),
    ] {
        assert_eq!(property_name(variable).as_deref(), property, "{variable}");
    }
}

/// The server.properties the image writes for the kafka service: compose's
/// variables over the image's defaults, listeners derived when unset.
fn image_properties(compose_env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = IMAGE_DEFAULTS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let derive_listeners = !compose_env.contains_key("KAFKA_LISTENERS")
        && compose_env.contains_key("KAFKA_ADVERTISED_LISTENERS");
    env.extend(compose_env.clone());
    if derive_listeners {
        // As `configure`: the advertised listeners on every interface.
        let listeners = env["KAFKA_ADVERTISED_LISTENERS"]
            .split(',')
            .map(|l| match (l.split_once("://"), l.rsplit_once(':')) {
                (Some((name, _)), Some((_, port))) => format!("{name}://0.0.0.0:{port}"),
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",");
        env.insert("KAFKA_LISTENERS".to_owned(), listeners);
    }
    env.into_iter()
        .filter_map(|(k, v)| property_name(&k).map(|p| (p, v)))
        .collect()
}

/// `value` with every `[prefix]host:port` element (a listener `NAME://host:port`,
/// a voter `id@host:port`) moved to 127.0.0.1 and the local port `ports` maps it to.
fn localize(value: &str, ports: &BTreeMap<u16, u16>) -> String {
    value
        .split(',')
        .map(|element| {
            let Some((address, port)) = element.rsplit_once(':') else {
                return element.to_owned();
            };
            let Some(local) = port.parse::<u16>().ok().and_then(|p| ports.get(&p)) else {
                return element.to_owned();
            };
            let prefix = match (address.rfind("://"), address.rfind('@')) {
                (Some(i), _) => &address[..i + 3],
                (None, Some(i)) => &address[..=i],
                (None, None) => "",
            };
            format!("{prefix}127.0.0.1:{local}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The port of the listener called `name` in a `listeners`-style value.
fn listener_port(listeners: &str, name: &str) -> Option<u16> {
    listeners
        .split(',')
        .find(|l| l.split_once("://").is_some_and(|(n, _)| n == name))
        .and_then(|l| l.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
}

/// Every key of the broker configuration the broker logged at start-up
/// ("KafkaConfig values:" and the tab-indented `key = value` lines after it).
fn logged_config_keys(server_log: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut in_block = false;
    for line in server_log.lines() {
        if line.contains("KafkaConfig values:") {
            in_block = true;
        } else if in_block {
            match line.strip_prefix('\t').and_then(|l| l.split_once(" = ")) {
                Some((key, _)) => {
                    keys.insert(key.to_owned());
                }
                None => in_block = false,
            }
        }
    }
    keys
}

/// A property no Kafka has, given to the broker alongside compose's: the
/// check must report it, or it could not report a misspelled one either.
const MADE_UP: &str = "auto.create.topic.enable";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_settings_of_compose_start_a_broker_that_knows_every_one_of_them() {
    let _machine = system_tests::share_the_machine().await;
    let kafka_env = environment(&services(&compose())["kafka"]);
    assert!(
        kafka_env.keys().any(|k| k.starts_with("KAFKA_")),
        "compose.yaml's kafka service sets no KAFKA_ variable"
    );
    let properties = image_properties(&kafka_env);

    // Every port compose's listeners and voters name gets a free local one.
    let compose_ports: BTreeSet<u16> = [
        "listeners",
        "advertised.listeners",
        "controller.quorum.voters",
    ]
    .iter()
    .filter_map(|key| properties.get(*key))
    .flat_map(|value| value.split(','))
    .filter_map(|element| element.rsplit_once(':')?.1.parse().ok())
    .collect();
    let ports: BTreeMap<u16, u16> = compose_ports
        .iter()
        .copied()
        .zip(test_support::kafka_process::free_ports(compose_ports.len()))
        .collect();
    let mut local: BTreeMap<String, String> = properties
        .iter()
        .map(|(k, v)| (k.clone(), localize(v, &ports)))
        .collect();
    // The host-facing listener (the one advertised as localhost) is where
    // this test connects; the controller's is where its quorum votes.
    let external = properties["advertised.listeners"]
        .split(',')
        .find(|l| l.contains("://localhost:"))
        .and_then(|l| l.split_once("://"))
        .map(|(name, _)| name.to_owned())
        .expect("compose.yaml advertises a listener to the host (localhost)");
    let client_port = listener_port(&local["listeners"], &external).expect("the host's listener");
    let controller = local["controller.listener.names"]
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let controller_port =
        listener_port(&local["listeners"], &controller).expect("the controller's listener");

    let kafka = tokio::task::spawn_blocking(move || {
        KafkaProcess::start_with_config(client_port, controller_port, |dir| {
            local.insert(
                "log.dirs".to_owned(),
                dir.join("kraft-combined-logs").display().to_string(),
            );
            let mut text: String = local.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            text.push_str(&format!("{MADE_UP}=false\n"));
            text
        })
    })
    .await
    .unwrap();

    // It answers: a topic is created (compose has automatic creation off, as
    // kafka-init knows), a record written and read back on the host's listener.
    let broker = TestBroker::external(kafka.bootstrap());
    let topic = test_support::unique("compose-check");
    broker.create_topic(&topic, 1).await;
    let producer: FutureProducer = broker.client_config().create().unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key("globe").payload("w"),
            test_support::DEADLINE,
        )
        .await
        .map_err(|(e, _)| e)
        .expect("the broker acknowledges a record");
    let records = broker.records_at_least(&topic, 1).await;
    assert_eq!(records[0].value_str(), "w");

    // Every key compose sets is one the broker knows; the made-up one is not.
    let server_log = kafka.server_log();
    let known = logged_config_keys(&server_log);
    assert!(
        known.len() > 100,
        "the broker logged no configuration ({} keys) in {}",
        known.len(),
        kafka.dir().display()
    );
    assert!(
        !known.contains(MADE_UP),
        "{MADE_UP} is a real setting now: pick another made-up one"
    );
    let unknown: Vec<String> = kafka_env
        .keys()
        .filter_map(|variable| {
            let property = property_name(variable)?;
            (!known.contains(&property)).then(|| format!("{variable} ({property})"))
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "compose.yaml's kafka service sets what Apache Kafka does not know: {unknown:?}"
    );
    for line in server_log.lines().filter(|l| l.contains("not used")) {
        assert!(
            !properties.keys().any(|p| line.contains(p.as_str())),
            "the broker ignores a setting of compose.yaml: {line}"
        );
    }
}

/// The `cluster` profile: three voters that are brokers too, each with the
/// settings of scripts/kafka/cluster.properties (which scripts/kafka.sh
/// `--nodes 3` and the cluster test run), and topics created on all three
/// with two replicas in sync. The default stack is left as it was.
#[test]
fn the_cluster_profile_runs_three_nodes_with_the_settings_the_scripts_and_tests_run() {
    let services = services(&compose());
    let in_profile: BTreeSet<&str> = services
        .iter()
        .filter(|(_, s)| {
            s["profiles"]
                .as_sequence()
                .is_some_and(|p| p.iter().any(|p| p.as_str() == Some("cluster")))
        })
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        in_profile,
        BTreeSet::from(["kafka-1", "kafka-2", "kafka-3", "kafka-cluster-init"]),
        "only the cluster's services are in the profile, so the default stack is unchanged"
    );
    let version = local_kafka_version();
    let nodes = ["kafka-1", "kafka-2", "kafka-3"];
    let envs: Vec<BTreeMap<String, String>> =
        nodes.iter().map(|n| environment(&services[*n])).collect();
    for (i, (name, env)) in nodes.iter().zip(&envs).enumerate() {
        assert_eq!(
            services[*name]["image"].as_str(),
            Some(format!("apache/kafka:{version}").as_str())
        );
        assert_eq!(env["KAFKA_NODE_ID"], (i + 1).to_string(), "{name}");
        assert!(
            env["KAFKA_ADVERTISED_LISTENERS"].contains(&format!("//{name}:")),
            "{name}"
        );
        assert_eq!(env["KAFKA_PROCESS_ROLES"], "broker,controller", "{name}");
        assert_eq!(
            env["KAFKA_CONTROLLER_QUORUM_VOTERS"], "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093",
            "{name}"
        );
        assert_eq!(
            env["CLUSTER_ID"], envs[0]["CLUSTER_ID"],
            "{name}: one cluster id"
        );
        // scripts/kafka/cluster.properties, line by line, as KAFKA_ variables.
        let cluster: BTreeMap<String, String> = env
            .iter()
            .filter_map(|(k, v)| Some((property_name(k)?, v.clone())))
            .collect();
        for (key, value) in test_support::kafka_process::cluster_properties() {
            assert_eq!(
                cluster.get(key).map(String::as_str),
                Some(value),
                "{name}: {key} differs from scripts/kafka/cluster.properties"
            );
        }
    }
    // The id must be one Kafka takes: 16 bytes in URL-safe base64 (22 characters).
    assert_eq!(envs[0]["CLUSTER_ID"].len(), 22);
    let init = services["kafka-cluster-init"]["command"][0]
        .as_str()
        .unwrap();
    for topic in ["observations", "observations.dlq"] {
        let create = init
            .split("&&")
            .find(|c| c.contains(&format!("--topic {topic} ")))
            .unwrap_or_else(|| panic!("kafka-cluster-init creates no {topic}"));
        assert!(create.contains("--replication-factor 3"), "{create}");
        assert!(
            create.contains("--config min.insync.replicas=2"),
            "{create}"
        );
        assert!(
            create.contains("kafka-1:29092,kafka-2:29092,kafka-3:29092"),
            "{create}"
        );
    }
}
