//! Guards compose.yaml, which cannot run here (no Docker engine): it must
//! parse, name every service of the stack, build each application from a
//! binary the workspace has, and set only environment variables that the
//! settings code reads, so the two cannot drift apart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use platform::settings::{Settings, ENV_PREFIX, ENV_SEPARATOR};
use serde_yaml_ng::Value;

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

fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Null => BTreeMap::new(),
        env => serde_yaml_ng::from_value(env.clone()).unwrap(),
    }
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
