//! The HTTP conventions both services follow: one error body, one set of
//! extractors and one rejection mapping, one health and readiness shape, one
//! request-metrics layer, one serving loop with its limits ([`serve`]) and
//! one set of request guards ([`RequestGuards`]).
//!
//! The status of a request that fails before its handler runs is decided
//! here, once, by what is wrong with it:
//!
//! | what is wrong                                             | status | `error.code`             |
//! |-----------------------------------------------------------|--------|--------------------------|
//! | the body is not JSON at all (syntax)                      | 400    | `malformed_json`         |
//! | the request cannot be read (body cut off, path not UTF-8) | 400    | `bad_request`            |
//! | the body is not declared as JSON                          | 415    | `unsupported_media_type` |
//! | the body is over the size limit                           | 413    | `payload_too_large`      |
//! | the body is JSON but not a valid value                    | 422    | `invalid_body`           |
//! | a query or path parameter has the wrong type or range     | 422    | `invalid_parameter`      |
//!
//! And before any of that, the guards ([`RequestGuards`]) and the serving
//! loop ([`serve`]) refuse:
//!
//! | what is wrong                                             | status | `error.code`             |
//! |-----------------------------------------------------------|--------|--------------------------|
//! | the `Host` is not one of `http.allowed_hosts`             | 421    | `misdirected_request`    |
//! | two `Content-Type` headers                                | 400    | `bad_request`            |
//! | a state-changing request from another site's page         | 403    | `cross_origin_request`   |
//! | the body trickled (`http.body_timeout`, `[uploads]` pace) | 408    | `request_timeout`        |
//! | `http.max_connections` connections are open              | 503    | `too_many_connections`   |
//!
//! A query string is decoded leniently (any bytes percent-decode to
//! something), so in practice every query-string rejection is a parameter
//! of the wrong type or out of range, `?mass=abc` or `?width=-1`: 422
//! `invalid_parameter`, in both services.
//!
//! Errors are answered by [`ErrorResponse`]; a service's own `ApiError`
//! names its failures and hands the status, code and message to it.

pub mod auth;
mod body;
mod error;
mod extract;
mod guards;
mod health;
mod host;
mod metrics;
mod openapi;
mod origin;
mod page;
mod serve;
mod stall;

pub use body::{BodyTimeout, Pace};
pub use error::{ErrorBody, ErrorCode, ErrorDetail, ErrorResponse};
pub use extract::{ApiJson, ApiPath, ApiQuery, Rejection};
pub use guards::{upload_pace, RequestGuards, HOST_EXEMPT_ROUTES};
pub use health::{Check, Health, Readiness};
pub use host::MisdirectedRequest;
pub use metrics::{
    method_label, with_request_metrics, ERRORS, METHODS, OTHER_METHOD, REQUESTS, REQUEST_SECONDS,
    UNMATCHED_ROUTE,
};
pub use openapi::{model_id_parameter, parameter, GuardResponses};
pub use origin::CrossOrigin;
pub use page::{page_limit, DEFAULT_PAGE, MAX_PAGE};
pub use serve::{serve, OPEN_CONNECTIONS, REFUSALS_AT_ONCE, REFUSED_CONNECTIONS};
