//! `openapi.json` at the top of the repository is generated from the code of
//! both HTTP services; this test fails when the committed file differs from
//! what the code generates. `scripts/openapi.sh` rewrites it.

use std::path::Path;

use platform::settings::Settings;
use test_support::TestEnvironment;
use utoipa::openapi::server::Server;
use utoipa::openapi::{InfoBuilder, OpenApi};

/// One document for both services. Each path names the server(s) that serve
/// it; the operational routes both serve (`/healthz`, `/readyz`, `/metrics`)
/// are described once.
fn generate() -> OpenApi {
    let defaults = Settings::default();
    let producer_url = format!(
        "http://{}:{}",
        defaults.producer.host, defaults.producer.port
    );
    let model_url = format!(
        "http://{}:{}",
        defaults.model_service.host, defaults.model_service.port
    );
    let server = |url: &str, what: &str| Server::builder().url(url).description(Some(what)).build();
    let producer_server = server(&producer_url, "producer");
    let model_server = server(&model_url, "model service");

    let producer = producer::openapi();
    let mut doc = model_service::openapi();
    let mut both = Vec::new();
    for (path, item) in &mut doc.paths.paths {
        let servers = if producer.paths.paths.contains_key(path) {
            both.push(path.clone());
            vec![producer_server.clone(), model_server.clone()]
        } else {
            vec![model_server.clone()]
        };
        item.servers = Some(servers);
    }
    for (path, mut item) in producer.paths.paths {
        if !both.contains(&path) {
            item.servers = Some(vec![producer_server.clone()]);
            doc.paths.paths.insert(path, item);
        }
    }
    if let (Some(components), Some(theirs)) = (doc.components.as_mut(), producer.components) {
        for (name, schema) in theirs.schemas {
            components.schemas.entry(name).or_insert(schema);
        }
    }
    let mut tags = doc.tags.take().unwrap_or_default();
    for tag in producer.tags.unwrap_or_default() {
        if !tags.iter().any(|t| t.name == tag.name) {
            tags.push(tag);
        }
    }
    doc.tags = Some(tags);
    doc.servers = Some(vec![producer_server, model_server]);
    doc.info = InfoBuilder::new()
        .title("Bayesian posteriors over Kafka")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Two services. The producer (port 8000) accepts Bernoulli observations and answers 202 only \
             once Kafka acknowledged them; the model service (port 8001) answers questions about the \
             posteriors the consumer keeps in Postgres, and draws them. Each path lists the server that \
             serves it. Errors are `{\"error\":{\"code\":\"...\",\"message\":\"...\"}}`.",
        ))
        .build();
    doc
}

fn committed_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.json")
}

#[test]
fn the_committed_openapi_json_is_what_the_code_generates() {
    let generated = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    if TestEnvironment::from_env().update_openapi {
        std::fs::write(committed_path(), &generated).unwrap();
    }
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json is stale: run scripts/openapi.sh and commit the result"
    );
}

#[test]
fn every_route_of_both_services_is_described() {
    let doc = generate();
    for path in [
        "/observations",
        "/update_model/{outcome}",
        "/posterior",
        "/models",
        "/models/{id}",
        "/models/{id}/posterior",
        "/models/{id}/history",
        "/models/{id}/predictive",
        "/models/{id}/samples",
        "/compare",
        "/models/{id}/posterior.png",
        "/models/{id}/posterior.svg",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            doc.paths.paths.contains_key(path),
            "{path} is missing from the OpenAPI document"
        );
    }
    // The seed's clients GET the update route; both methods are described.
    let update = &doc.paths.paths["/update_model/{outcome}"];
    assert!(
        update.get.is_some() && update.post.is_some(),
        "GET and POST /update_model/{{outcome}}"
    );
    // Both services serve the operational routes; both are named.
    let healthz = &doc.paths.paths["/healthz"];
    assert_eq!(healthz.servers.as_ref().map(Vec::len), Some(2));
}
