//! [`GuardResponses`]: the answers of the request guards and the serving
//! loop added to every operation of a service's OpenAPI document they can
//! come from, so the document lists them without every handler repeating
//! them; and [`model_id_parameter`], the one declaration of a model-id
//! parameter's schema.

use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder};

use axum::http::Method;

use super::HOST_EXEMPT_ROUTES;

/// Adds 421 (a `Host` outside `http.allowed_hosts`) to every operation but
/// the probes', 403 (`cross_origin_request`) to every state-changing one,
/// and 408 (`request_timeout`) and 400 (two `Content-Type` headers) to
/// every one with a body. An answer an operation already documents is kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardResponses {
    /// Paths whose `GET` changes state (as given to
    /// [`super::RequestGuards::state_changing_get`]).
    pub state_changing_gets: &'static [&'static str],
}

impl utoipa::Modify for GuardResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let state_changing_get = self.state_changing_gets.contains(&path.as_str());
            let exempt = HOST_EXEMPT_ROUTES.contains(&path.as_str());
            for (method, operation) in operations(item) {
                let changes_state = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
                add(operation, exempt, state_changing_get || changes_state);
            }
        }
    }
}

/// An item's operations with their methods, those it has.
pub(crate) fn operations(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    let PathItem {
        get,
        head,
        post,
        put,
        patch,
        delete,
        options,
        ..
    } = item;
    [
        (Method::GET, get),
        (Method::HEAD, head),
        (Method::POST, post),
        (Method::PUT, put),
        (Method::PATCH, patch),
        (Method::DELETE, delete),
        (Method::OPTIONS, options),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|operation| (method, operation)))
}

fn add(operation: &mut Operation, host_exempt: bool, changes_state: bool) {
    let responses = &mut operation.responses.responses;
    let mut insert = |status: &str, description: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| error(description));
    };
    if !host_exempt {
        insert(
            "421",
            "The request's `Host` is not one of `http.allowed_hosts` (`misdirected_request`).",
        );
    }
    if changes_state {
        insert(
            "403",
            "A browser sent it from a page of another site (`cross_origin_request`): \
             `Sec-Fetch-Site` other than `same-origin` or `none`, or an `Origin` whose host is not \
             the request's, and not one of `http.trusted_origins`.",
        );
    }
    if operation.request_body.is_some() {
        insert(
            "408",
            "The body did not arrive in time (`request_timeout`): within `http.body_timeout`, or, \
             for uploads, at the pace of `uploads.body_idle_timeout` and `uploads.min_bytes_per_second`.",
        );
        insert(
            "400",
            "The request cannot be read: two `Content-Type` headers (`bad_request`).",
        );
    }
}

/// A documented answer with the common error body.
pub(crate) fn error(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
            )
            .build(),
    )
}

/// A parameter of a hand-written `IntoParams`, with its schema.
pub fn parameter(
    name: &str,
    parameter_in: ParameterIn,
    description: &str,
    required: bool,
    schema: ObjectBuilder,
) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(parameter_in)
        .description(Some(description))
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .schema(Some(RefOr::T(Schema::Object(schema.build()))))
}

/// A parameter whose value is a model id, its schema carrying
/// [`domain::schema::MODEL_ID_PATTERN`]: utoipa's attributes take only
/// literals, so the services declare such parameters through this one
/// place (in a hand-written `IntoParams`) rather than copy the pattern.
pub fn model_id_parameter(
    name: &str,
    parameter_in: ParameterIn,
    description: &str,
    required: bool,
) -> ParameterBuilder {
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(domain::schema::MODEL_ID_PATTERN));
    parameter(name, parameter_in, description, required, schema)
}
