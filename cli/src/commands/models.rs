//! `bayes models`: every model with its counts, page after page of
//! `GET /models`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{print, print_json, CommandError};
use crate::client::Services;
use crate::table::Table;

/// The largest page the service gives.
const PAGE: &str = "1000";

#[derive(Debug, Deserialize)]
struct ModelList {
    models: Vec<Value>,
    next_after: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ModelInfo {
    model: String,
    successes: u64,
    failures: u64,
    trials: u64,
    version: u64,
    updated_at: String,
}

pub async fn models(services: &Services, json: bool) -> Result<(), CommandError> {
    let service = &services.model;
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![("limit", PAGE.to_owned())];
        if let Some(after) = &after {
            query.push(("after", after.clone()));
        }
        let page: ModelList = service
            .json(service.request(Method::GET, &["models"]).query(&query))
            .await?;
        all.extend(page.models);
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if json {
        return print_json(&json!({ "models": all }));
    }
    if all.is_empty() {
        return print("no models yet\n");
    }
    let mut table = Table::new(&[
        "MODEL",
        "SUCCESSES",
        "FAILURES",
        "TRIALS",
        "VERSION",
        "UPDATED",
    ]);
    for value in all {
        let m: ModelInfo = serde_json::from_value(value).map_err(|e| service.unexpected(e))?;
        table.row(vec![
            m.model,
            m.successes.to_string(),
            m.failures.to_string(),
            m.trials.to_string(),
            m.version.to_string(),
            m.updated_at,
        ]);
    }
    print(&table.render())
}
