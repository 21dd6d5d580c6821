//! `[http]`: what both HTTP services hold every connection and request to,
//! and the checks of the origins and hosts it lists.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{check, SettingsError};

/// What the producer and the model service hold to on every HTTP
/// connection and request: the limits a client cannot outgrow, and which
/// requests from browsers they refuse.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// How long a client has to send a request's head (request line and
    /// headers) once the server waits for one: on a new connection and on
    /// an idle keep-alive connection between two requests alike, so this is
    /// also how long an idle connection stays open. Past it the connection
    /// is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a client has to send a whole request body on every route
    /// but `POST /uploads` (whose pace is `uploads.body_idle_timeout` and
    /// `uploads.min_bytes_per_second`). Past it: 408 `request_timeout`.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// How long an answer may wait for a client that reads none of it (a
    /// write to the connection that makes no progress at all); then the
    /// connection is closed. Any progress starts the time anew, so a slow
    /// reader is served; one that stopped reading is not held forever.
    #[serde(with = "humantime_serde")]
    pub write_stall_timeout: Duration,
    /// The most connections one service keeps open at once. A client that
    /// connects past it is answered 503 `too_many_connections` with
    /// `Retry-After` and the connection is closed. The process's soft
    /// open-file limit is raised to its hard limit at start, and a warning
    /// says so when this does not fit under it.
    pub max_connections: usize,
    /// Origins (`scheme://host[:port]`) whose pages may send requests that
    /// change state (`POST`, `PUT`, ..., and `GET /update_model/{outcome}`)
    /// from a browser. Every other cross-site browser request is refused
    /// with 403 `cross_origin_request`; requests without `Sec-Fetch-Site`
    /// and `Origin` (curl, scripts) are not browsers' and pass. A list, or
    /// one comma-separated string in an environment variable.
    #[serde(deserialize_with = "string_list")]
    pub trusted_origins: Vec<String>,
    /// The `Host` values served (`name` for any port, or `name:port`),
    /// case-insensitive; empty: any. Another host is refused with 421
    /// `misdirected_request`, except on `/healthz`, `/readyz` and
    /// `/metrics`, which probes and scrapers reach by address. A list, or
    /// one comma-separated string in an environment variable.
    #[serde(deserialize_with = "string_list")]
    pub allowed_hosts: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_stall_timeout: Duration::from_secs(30),
            max_connections: 4_096,
            trusted_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// A list setting: a list in a file, or one comma-separated string (which
/// is all an environment variable can hold); empty items are dropped.
fn string_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<String>),
        Text(String),
    }
    let items = match ListOrText::deserialize(deserializer)? {
        ListOrText::List(items) => items,
        ListOrText::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

impl HttpSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check(
            "http.header_read_timeout",
            !self.header_read_timeout.is_zero(),
            || "0s would close every connection before its first request".to_owned(),
        )?;
        check("http.body_timeout", !self.body_timeout.is_zero(), || {
            "0s would refuse every request body".to_owned()
        })?;
        check(
            "http.write_stall_timeout",
            !self.write_stall_timeout.is_zero(),
            || "0s would close every connection that answers".to_owned(),
        )?;
        check("http.max_connections", self.max_connections >= 1, || {
            "0 would refuse every connection".to_owned()
        })?;
        for origin in &self.trusted_origins {
            check("http.trusted_origins", is_origin(origin), || {
                format!("{origin:?} is not an origin: write scheme://host[:port], without a path")
            })?;
        }
        for host in &self.allowed_hosts {
            check("http.allowed_hosts", is_host(host), || {
                format!("{host:?} is not a host: write name or name:port")
            })?;
        }
        Ok(())
    }
}

/// `scheme://host[:port]` and nothing more, as a browser's `Origin` header
/// spells it.
fn is_origin(origin: &str) -> bool {
    let Ok(uri) = origin.parse::<axum::http::Uri>() else {
        return false;
    };
    match (uri.scheme_str(), uri.authority()) {
        // Rebuilt from its parts, it must read the same: no path, query,
        // user or trailing slash was there.
        (Some(scheme), Some(authority)) => {
            !authority.as_str().contains('@')
                && format!("{scheme}://{authority}").eq_ignore_ascii_case(origin)
        }
        _ => false,
    }
}

/// `name` or `name:port`, as a `Host` header spells it.
fn is_host(host: &str) -> bool {
    host.parse::<axum::http::uri::Authority>()
        .is_ok_and(|a| !a.as_str().contains('@'))
}
