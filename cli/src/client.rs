//! One HTTP client per service: URLs built segment by segment (a model id is
//! never pasted into a path), and every answer that is not a success turned
//! into a [`ClientError`] that reads as one line: the service's own error
//! message and code, or why the service could not be reached.

use std::error::Error as _;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// How long to wait for a connection. There is no overall timeout: `watch`
/// follows a stream for as long as it runs and an upload takes what it takes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a call to a service failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service answered with its JSON error body.
    #[error("{message} ({status} {code})")]
    Service {
        status: u16,
        code: String,
        message: String,
    },
    /// The service answered an error without the JSON error body (a proxy,
    /// another program on the port).
    #[error("the {service} answered {status}: {body}")]
    Status {
        service: &'static str,
        status: u16,
        body: String,
    },
    /// No answer: refused, reset, a name that does not resolve.
    #[error("cannot reach the {service} at {url}: {reason}")]
    Unreachable {
        service: &'static str,
        url: String,
        reason: String,
    },
    /// A success whose body is not what the API documents.
    #[error("the {service} answered something unexpected: {reason}")]
    Unexpected {
        service: &'static str,
        reason: String,
    },
    /// An API key that cannot be a header value (a line break, a control character).
    #[error("the API key (--key or BAYES_KEY) holds characters a header cannot carry")]
    BadKey,
    /// A base URL that cannot take a path (`mailto:`, `data:`).
    #[error("the {service} URL {url} cannot be used as a base URL")]
    BadBaseUrl { service: &'static str, url: Url },
}

/// The two services.
#[derive(Debug)]
pub struct Services {
    pub producer: Service,
    pub model: Service,
}

impl Services {
    /// `key`: the API key every request carries (`Authorization: Bearer`).
    pub fn new(producer: Url, model: Url, key: Option<&str>) -> Result<Self, ClientError> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = key {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ClientError::BadKey)?;
            // Kept out of reqwest's debug output.
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .default_headers(headers)
            .build()
            .map_err(|e| ClientError::Unexpected {
                service: "HTTP client",
                reason: e.to_string(),
            })?;
        Ok(Self {
            producer: Service::new("producer", producer, http.clone())?,
            model: Service::new("model service", model, http)?,
        })
    }
}

/// One service at its base URL.
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    base: Url,
    http: reqwest::Client,
}

/// The error body both services answer with.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
    /// An invalid CSV's first bad lines (`invalid_csv`).
    #[serde(default)]
    errors: Vec<LineError>,
}

#[derive(Debug, Deserialize)]
struct LineError {
    line: u64,
    message: String,
}

impl ErrorDetail {
    /// The message, and for an invalid CSV its first bad line: the one
    /// line a person needs to fix the file.
    fn into_message(self) -> String {
        match self.errors.first() {
            Some(first) => format!("{}; line {}: {}", self.message, first.line, first.message),
            None => self.message,
        }
    }
}

impl Service {
    fn new(name: &'static str, base: Url, http: reqwest::Client) -> Result<Self, ClientError> {
        if base.cannot_be_a_base() {
            return Err(ClientError::BadBaseUrl {
                service: name,
                url: base,
            });
        }
        Ok(Self { name, base, http })
    }

    /// The base URL with `segments` appended, each percent-encoded as one
    /// path segment.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            // A base of `http://host/prefix/` keeps its prefix.
            path.pop_if_empty().extend(segments);
        }
        url
    }

    pub fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.http.request(method, self.url(segments))
    }

    /// Sends `request`; a success is returned as it is, anything else is an
    /// error.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => ClientError::Service {
                status: status.as_u16(),
                code: body.error.code.clone(),
                message: body.error.into_message(),
            },
            Err(_) => ClientError::Status {
                service: self.name,
                status: status.as_u16(),
                body: one_line(&text),
            },
        })
    }

    /// Sends `request` and reads the answer as `T`.
    pub async fn json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self.send(request).await?;
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.unexpected(e))
    }

    pub fn unexpected(&self, reason: impl ToString) -> ClientError {
        ClientError::Unexpected {
            service: self.name,
            reason: reason.to_string(),
        }
    }

    /// The service did not answer: the innermost cause says why ("Connection
    /// refused"), reqwest's own message only repeats the URL.
    pub fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        let mut reason = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            reason = cause.to_string();
            source = cause.source();
        }
        ClientError::Unreachable {
            service: self.name,
            url: self.base.as_str().trim_end_matches('/').to_owned(),
            reason,
        }
    }
}

/// A body that is not JSON, shortened to one line of at most 200 characters.
fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "(no body)".into();
    }
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}
