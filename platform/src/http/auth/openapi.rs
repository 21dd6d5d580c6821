//! [`AuthResponses`]: the API keys in a service's OpenAPI document, from the
//! same route table the layer enforces: the `bearer` security scheme, each
//! operation's scope (`security`), and the answers of a refused key.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr};

use super::super::openapi;
use super::{Access, RouteScopes};

/// The name of the security scheme in the document.
pub const SCHEME: &str = "bearer";

/// Declares `bearer` and, on every operation the table names, its scope
/// (an empty requirement for public ones) and the 401, 403, 429 and 503
/// answers of the key check; a status the operation documents already
/// gets the key's reason added to its description.
#[derive(Debug, Clone, Copy)]
pub struct AuthResponses {
    pub routes: RouteScopes,
}

impl utoipa::Modify for AuthResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`bayes keys create`), as `Authorization: Bearer <key>`. Needed only when \
                         `auth.required` is on; each operation names the scope it needs: `ingest`, `read` or \
                         `admin`.",
                    ))
                    .build(),
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, operation) in openapi::operations(item) {
                match self.routes.access(&method, path) {
                    Some(Access::Public) => {
                        operation.security = Some(vec![SecurityRequirement::default()]);
                    }
                    Some(Access::Needs(scope)) => {
                        operation.security =
                            Some(vec![SecurityRequirement::new(SCHEME, [scope.as_str()])]);
                        add_refusals(operation, scope.as_str());
                    }
                    None => {}
                }
            }
        }
    }
}

fn add_refusals(operation: &mut Operation, scope: &str) {
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, description: String| match responses.get_mut(status) {
        Some(RefOr::T(existing)) => {
            existing.description = format!("{} Or: {description}", existing.description);
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            responses.insert(status.to_owned(), openapi::error(&description));
        }
    };
    add(
        "401",
        "No API key, or one not in force (`unauthorized`), when `auth.required` is on; \
         `WWW-Authenticate: Bearer` says so."
            .to_owned(),
    );
    add(
        "403",
        format!("The API key does not hold scope `{scope}` (`insufficient_scope`)."),
    );
    add(
        "429",
        "The API key sent more than its `rate_limit` of requests a second (`rate_limited`); \
         see `Retry-After`."
            .to_owned(),
    );
    add(
        "503",
        "The service has not loaded the API keys from the database yet (`keys_unavailable`)."
            .to_owned(),
    );
}
