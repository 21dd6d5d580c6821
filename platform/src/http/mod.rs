//! The HTTP conventions both services follow: one error body, one set of
//! extractors and one rejection mapping, one health and readiness shape, one
//! request-metrics layer.
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
//! A query string is decoded leniently (any bytes percent-decode to
//! something), so in practice every query-string rejection is a parameter
//! of the wrong type or out of range, `?mass=abc` or `?width=-1`: 422
//! `invalid_parameter`, in both services.
//!
//! Errors are answered by [`ErrorResponse`]; a service's own `ApiError`
//! names its failures and hands the status, code and message to it.

mod error;
mod extract;
mod health;
mod metrics;
mod page;

pub use error::{ErrorBody, ErrorCode, ErrorDetail, ErrorResponse};
pub use extract::{ApiJson, ApiPath, ApiQuery, Rejection};
pub use health::{Check, Health, Readiness};
pub use metrics::{with_request_metrics, ERRORS, REQUESTS, REQUEST_SECONDS, UNMATCHED_ROUTE};
pub use page::{page_limit, DEFAULT_PAGE, MAX_PAGE};
