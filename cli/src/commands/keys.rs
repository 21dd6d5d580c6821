//! `bayes keys create|list|revoke`: the model service's `/keys`, with an
//! admin key. `create` prints the token alone on stdout (it is shown this
//! once), so `TOKEN=$(bayes keys create ...)` keeps it; what the key is goes
//! to stderr.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{print, print_json, CommandError};
use crate::client::Services;
use crate::table::Table;

#[derive(Debug, Deserialize)]
struct KeyInfo {
    id: String,
    name: String,
    scopes: Vec<String>,
    rate_limit: Option<u32>,
    created_at: String,
    last_used_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct KeyList {
    keys: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct Created {
    #[serde(flatten)]
    key: KeyInfo,
    token: String,
}

pub async fn create_key(
    services: &Services,
    name: &str,
    scopes: &[String],
    rate_limit: Option<u32>,
) -> Result<(), CommandError> {
    let service = &services.model;
    let mut body = json!({"name": name, "scopes": scopes});
    if let Some(rate_limit) = rate_limit {
        body["rate_limit"] = json!(rate_limit);
    }
    let created: Created = service
        .json(service.request(Method::POST, &["keys"]).json(&body))
        .await?;
    eprintln!(
        "created key {} (id {}) with scopes {}; its token is shown this once:",
        created.key.name,
        created.key.id,
        created.key.scopes.join(" ")
    );
    print(&format!("{}\n", created.token))
}

async fn keys(services: &Services) -> Result<Vec<Value>, CommandError> {
    let service = &services.model;
    let list: KeyList = service
        .json(service.request(Method::GET, &["keys"]))
        .await?;
    Ok(list.keys)
}

pub async fn list_keys(services: &Services, json: bool) -> Result<(), CommandError> {
    let all = keys(services).await?;
    if json {
        return print_json(&json!({ "keys": all }));
    }
    if all.is_empty() {
        return print("no keys\n");
    }
    let mut table = Table::new(&["ID", "NAME", "SCOPES", "RATE LIMIT", "CREATED", "LAST USED"]);
    for value in all {
        let k: KeyInfo = serde_json::from_value(value).map_err(|e| services.model.unexpected(e))?;
        table.row(vec![
            k.id,
            k.name,
            k.scopes.join(" "),
            k.rate_limit
                .map_or_else(|| "-".to_owned(), |r| format!("{r}/s")),
            k.created_at,
            k.last_used_at.unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    print(&table.render())
}

pub async fn revoke_key(services: &Services, key: &str) -> Result<(), CommandError> {
    let service = &services.model;
    // A name is looked up: ids are 12 hex digits, names may be too, and
    // the id wins.
    let mut id = None;
    for value in keys(services).await? {
        let k: KeyInfo = serde_json::from_value(value).map_err(|e| service.unexpected(e))?;
        if k.id == key {
            id = Some(k.id);
            break;
        }
        if k.name == key {
            id = Some(k.id);
        }
    }
    let id = id.ok_or_else(|| CommandError::NoSuchKey(key.to_owned()))?;
    service
        .send(service.request(Method::DELETE, &["keys", &id]))
        .await?;
    print(&format!("revoked key {id}\n"))
}
