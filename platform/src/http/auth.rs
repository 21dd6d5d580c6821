//! API keys on both HTTP services: the scopes, each service's route table
//! ([`RouteScopes`]), and the layer ([`Auth`]) that checks every request
//! against the keys held in memory ([`KeyRing`]), so authenticating costs no
//! database round trip.
//!
//! A request passes when its route is public (`/healthz`, `/readyz`,
//! `/metrics`, the dashboards' static pages) or when it carries
//! `Authorization: Bearer <key>` of a key in force holding the route's
//! scope. Otherwise:
//!
//! | what is wrong                                   | status | `error.code`         |
//! |-------------------------------------------------|--------|----------------------|
//! | no key, or not `Bearer`                         | 401    | `unauthorized`       |
//! | a key that is not in force (unknown, revoked)   | 401    | `unauthorized`       |
//! | a key without the route's scope                 | 403    | `insufficient_scope` |
//! | the key's `rate_limit` is used up               | 429    | `rate_limited`       |
//! | the keys were never loaded from Postgres yet    | 503    | `keys_unavailable`   |
//!
//! 401 and 403 carry `WWW-Authenticate` as RFC 6750 spells it. A route the
//! table does not name (an unknown path, another method) needs a key of
//! any scope before the router answers 404 or 405, so an anonymous client
//! learns nothing of the routes.

mod openapi;
mod refresh;
mod ring;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ErrorResponse;

pub use openapi::AuthResponses;
pub use refresh::keep_fresh;
pub use ring::{
    IssuedKey, KeyRing, BOOTSTRAP_KEY_NAME, KEYS_IN_FORCE, KEYS_LOADED_AT, KEY_REQUESTS,
};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Write observations: the producer's `POST` routes, the seed's
    /// `GET /update_model/{outcome}`, and an experiment's assignments.
    Ingest,
    /// Every `GET` of both services but `/keys`.
    Read,
    /// Create, change and delete models and experiments; manage keys.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Ingest => 1,
            Scope::Read => 2,
            Scope::Admin => 4,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes. None implies another: a key holds what it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Scopes(u8);

impl Scopes {
    pub const ALL: Scopes = Scopes(7);

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes held, in the order of [`Scope::ALL`].
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Space-separated, as stored (and as OAuth writes scopes).
    pub fn to_text(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    /// The stored form back; `None` unless every word is a scope.
    pub fn from_text(text: &str) -> Option<Scopes> {
        let mut scopes = Scopes::default();
        for word in text.split(' ') {
            scopes.insert(Scope::parse(word)?);
        }
        (!scopes.is_empty()).then_some(scopes)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes = Scopes::default();
        for scope in iter {
            scopes.insert(scope);
        }
        scopes
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: probes, scrapers, and static pages that hold no data.
    Public,
    /// A key holding this scope.
    Needs(Scope),
}

/// A service's route table: `(method, route template, access)`. `HEAD` is
/// looked up as `GET`, whose handler serves it.
#[derive(Debug, Clone, Copy)]
pub struct RouteScopes(pub &'static [(&'static str, &'static str, Access)]);

impl RouteScopes {
    /// The access of `method route`; `None` when the table does not name it.
    pub fn access(&self, method: &Method, route: &str) -> Option<Access> {
        let method = if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        };
        self.0
            .iter()
            .find(|(m, r, _)| *m == method && *r == route)
            .map(|(_, _, access)| *access)
    }
}

/// The key a request was authenticated with: its name, for the handlers'
/// logs (who created or revoked a key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(pub Arc<str>);

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this route needs an API key: send `Authorization: Bearer <key>`{}", needs_scope(*.0))]
    Missing(Option<Scope>),
    #[error("the API key is not one in force (unknown, or revoked)")]
    Unknown,
    #[error("key `{name}` does not hold scope `{needed}` (it holds: {held})")]
    Scope {
        name: Arc<str>,
        needed: Scope,
        held: String,
    },
    #[error("key `{name}` sent more than its {limit} requests a second; retry in {} s", .retry_after.as_secs())]
    RateLimited {
        name: Arc<str>,
        limit: u32,
        retry_after: Duration,
    },
    #[error("the API keys have not been loaded from the database yet; retry shortly")]
    NotLoaded,
}

fn needs_scope(scope: Option<Scope>) -> String {
    scope.map_or_else(String::new, |s| {
        format!(" of a key with scope `{}`", s.as_str())
    })
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Missing(_) | Refusal::Unknown => StatusCode::UNAUTHORIZED,
            Refusal::Scope { .. } => StatusCode::FORBIDDEN,
            Refusal::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::NotLoaded => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Missing(_) | Refusal::Unknown => "unauthorized",
            Refusal::Scope { .. } => "insufficient_scope",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::NotLoaded => "keys_unavailable",
        }
    }

    /// The answer, in the common error shape, with `WWW-Authenticate` or
    /// `Retry-After` as each status asks.
    pub fn to_error_response(&self) -> ErrorResponse {
        let answer = ErrorResponse::new(self.status(), self.code(), self.to_string());
        let challenge = match self {
            Refusal::Missing(_) => r#"Bearer realm="bayes""#.to_owned(),
            Refusal::Unknown => r#"Bearer realm="bayes", error="invalid_token""#.to_owned(),
            Refusal::Scope { needed, .. } => format!(
                r#"Bearer realm="bayes", error="insufficient_scope", scope="{}""#,
                needed.as_str()
            ),
            Refusal::RateLimited { retry_after, .. } => {
                return answer.retry_after(retry_after.as_secs().max(1))
            }
            Refusal::NotLoaded => return answer.retry_after(1),
        };
        match HeaderValue::from_str(&challenge) {
            Ok(value) => answer.header(WWW_AUTHENTICATE, value),
            Err(_) => answer,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        self.to_error_response().into_response()
    }
}

/// The layer of one service: its keys and its route table.
#[derive(Debug, Clone)]
pub struct Auth {
    ring: Arc<KeyRing>,
    routes: RouteScopes,
}

impl Auth {
    pub fn new(ring: Arc<KeyRing>, routes: RouteScopes) -> Self {
        Self { ring, routes }
    }

    /// Wraps every route and fallback of `router` (call it after adding
    /// them, and inside the request guards and metrics, which should see
    /// and count its refusals).
    pub fn apply<S>(self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        router.layer(middleware::from_fn_with_state(self, authenticate))
    }
}

async fn authenticate(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>();
    let needed = match route.and_then(|r| auth.routes.access(request.method(), r.as_str())) {
        Some(Access::Public) => return next.run(request).await,
        Some(Access::Needs(scope)) => Some(scope),
        None => None,
    };
    match auth.ring.authenticate(request.headers(), needed) {
        Ok(name) => {
            request.extensions_mut().insert(name);
            next.run(request).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// A key's name: 1 to 64 of `a-z`, `0-9`, `_`, `.`, `-`, starting with a
/// letter or a digit (it is a metric label), and not `bootstrap`.
pub fn check_key_name(name: &str) -> Result<(), String> {
    let valid = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(format!(
            "a key name is 1 to 64 of a-z, 0-9, `_`, `.`, `-`, starting with a letter or digit; got {:?}",
            domain::observation::truncate_for_message(name)
        ));
    }
    if name == BOOTSTRAP_KEY_NAME {
        return Err(format!(
            "`{BOOTSTRAP_KEY_NAME}` names the key of auth.bootstrap_admin_key; choose another name"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_stored_text() {
        let scopes: Scopes = [Scope::Admin, Scope::Ingest].into_iter().collect();
        assert_eq!(scopes.to_text(), "ingest admin");
        assert_eq!(Scopes::from_text("ingest admin"), Some(scopes));
        assert_eq!(
            Scopes::from_text("read"),
            Some([Scope::Read].into_iter().collect())
        );
        assert_eq!(Scopes::from_text(""), None);
        assert_eq!(Scopes::from_text("root"), None);
        assert!(!Scopes::from_text("read")
            .unwrap_or_default()
            .contains(Scope::Admin));
    }

    #[test]
    fn a_table_looks_head_up_as_get_and_names_nothing_else() {
        let table = RouteScopes(&[
            ("GET", "/models", Access::Needs(Scope::Read)),
            ("GET", "/healthz", Access::Public),
        ]);
        assert_eq!(
            table.access(&Method::HEAD, "/models"),
            Some(Access::Needs(Scope::Read))
        );
        assert_eq!(table.access(&Method::GET, "/healthz"), Some(Access::Public));
        assert_eq!(table.access(&Method::POST, "/models"), None);
        assert_eq!(table.access(&Method::GET, "/nope"), None);
    }

    #[test]
    fn key_names_are_label_safe_and_bootstrap_is_reserved() {
        assert!(check_key_name("dashboard-1.ro_x").is_ok());
        for bad in ["", "Upper", "-lead", "a b", "bootstrap", &"a".repeat(65)] {
            assert!(check_key_name(bad).is_err(), "{bad:?}");
        }
    }
}
