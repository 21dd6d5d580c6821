//! The `Host` allow-list (`http.allowed_hosts`): with one set, a request
//! naming another host is refused, so a page whose name an attacker pointed
//! at this service's address (DNS rebinding) cannot read its answers.
//!
//! Refused with 421 Misdirected Request rather than 400: the request is
//! well-formed, it was only sent to a server that does not serve the name
//! it asks for, which is what RFC 9110 (15.5.20) says 421 means; a client
//! may retry it elsewhere.

use axum::http::header::HOST;
use axum::http::{HeaderMap, Uri};

/// Why a request's host is not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MisdirectedRequest {
    #[error("host {0:?} is not served here (http.allowed_hosts)")]
    NotAllowed(String),
    #[error("the request names no host; this service serves only those of http.allowed_hosts")]
    NoHost,
}

/// Whether the host a request names (its absolute URI's, else its `Host`
/// header) is one of `allowed`: an entry `name` allows that name on any
/// port, `name:port` that port only; case does not matter. An empty list
/// allows any host.
pub fn check(uri: &Uri, headers: &HeaderMap, allowed: &[String]) -> Result<(), MisdirectedRequest> {
    if allowed.is_empty() {
        return Ok(());
    }
    let named = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get(HOST)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        })
        .ok_or(MisdirectedRequest::NoHost)?;
    let name = name_of(&named);
    let served = allowed.iter().any(|entry| {
        if entry.eq_ignore_ascii_case(&named) {
            return true;
        }
        // An entry without a port allows every port of its name.
        name_of(entry) == entry && entry.eq_ignore_ascii_case(name)
    });
    if served {
        Ok(())
    } else {
        Err(MisdirectedRequest::NotAllowed(named))
    }
}

/// `host:port` without its port (`[::1]:80` is `[::1]`).
fn name_of(host: &str) -> &str {
    match host.rfind(':') {
        Some(at)
            if !host[at..].contains(']') && host[at + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[..at]
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn served(host: Option<&str>, allowed: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(HOST, HeaderValue::from_str(host).unwrap());
        }
        let allowed: Vec<String> = allowed.iter().map(|&a| a.to_owned()).collect();
        check(&Uri::from_static("/healthz"), &headers, &allowed).is_ok()
    }

    #[test]
    fn a_name_allows_every_port_and_a_name_with_a_port_only_that_port() {
        assert!(served(Some("evil.example"), &[]));
        assert!(served(None, &[]));
        let allowed = ["api.example.com", "localhost:8000", "[::1]"];
        assert!(served(Some("api.example.com"), &allowed));
        assert!(served(Some("API.Example.com:443"), &allowed));
        assert!(served(Some("localhost:8000"), &allowed));
        assert!(served(Some("[::1]:8000"), &allowed));
        assert!(!served(Some("localhost:8001"), &allowed));
        assert!(!served(Some("localhost"), &allowed));
        assert!(!served(Some("evil.example"), &allowed));
        assert!(!served(Some("api.example.com.evil.example"), &allowed));
        assert!(!served(None, &allowed));
    }
}
