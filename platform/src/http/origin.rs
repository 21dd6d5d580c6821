//! Cross-site request forgery protection, decided the way Go 1.25's
//! `net/http.CrossOriginProtection` decides: browsers say where a request
//! comes from (`Sec-Fetch-Site` since 2023, `Origin` before), and a request
//! that changes state is refused when it comes from another site. Simple
//! requests (`text/plain`, `multipart/form-data` forms, a `GET` an `<img>`
//! sends) reach the server without a CORS preflight, so the server itself
//! must refuse them; scripts and curl send neither header and pass.

use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderName, Method, Uri};

/// `Sec-Fetch-Site` (Fetch Metadata), not among `http`'s constants.
static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Why a request was refused as cross-site.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrossOrigin {
    /// The browser said the request comes from another site.
    #[error("cross-site request refused (Sec-Fetch-Site: {0}); only pages of this service's own origin or of http.trusted_origins may send it")]
    FetchSite(String),
    /// An older browser: `Origin` names another host than `Host`.
    #[error("cross-origin request refused (Origin {origin} is not host {host:?}); only pages of this service's own origin or of http.trusted_origins may send it")]
    Origin { origin: String, host: String },
}

/// What [`check`] needs to know of a request.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    /// A `GET` (or `HEAD`) that changes state, such as the producer's
    /// seed-compatible `GET /update_model/{outcome}`: checked as a `POST` is.
    pub changes_state: bool,
}

/// Whether a browser may send this request from where it says it comes
/// from; `trusted` are whole origins (`https://app.example.com`) that may.
pub fn check(request: Source<'_>, trusted: &[String]) -> Result<(), CrossOrigin> {
    let safe = matches!(
        *request.method,
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if safe && !request.changes_state {
        return Ok(());
    }
    let header = |name: &HeaderName| {
        request
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let origin = header(&ORIGIN);
    let is_trusted = || {
        origin
            .as_deref()
            .is_some_and(|o| trusted.iter().any(|t| t.eq_ignore_ascii_case(o)))
    };
    match header(&SEC_FETCH_SITE).as_deref() {
        // `none`: the user typed the address or used a bookmark.
        Some("same-origin" | "none") => return Ok(()),
        Some(site) => {
            return if is_trusted() {
                Ok(())
            } else {
                Err(CrossOrigin::FetchSite(site.to_owned()))
            }
        }
        None => {}
    }
    // Neither header: not a browser, or a same-origin request of an old one.
    let Some(origin) = origin.as_deref() else {
        return Ok(());
    };
    let host = request
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| header(&HOST))
        .unwrap_or_default();
    // The scheme cannot be compared (Host has none): an http page posting
    // to the https site passes, as in Go; HSTS is the remedy there.
    let origin_host = origin
        .parse::<Uri>()
        .ok()
        .and_then(|uri| uri.authority().map(|a| a.as_str().to_owned()));
    if origin_host.is_some_and(|h| h.eq_ignore_ascii_case(&host)) || is_trusted() {
        return Ok(());
    }
    Err(CrossOrigin::Origin {
        origin: origin.to_owned(),
        host,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn decide(
        method: Method,
        changes_state: bool,
        headers: &[(&str, &str)],
    ) -> Result<(), CrossOrigin> {
        let mut map = HeaderMap::new();
        map.insert(HOST, HeaderValue::from_static("api.example.com"));
        for (name, value) in headers {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let uri = Uri::from_static("/observations");
        let trusted = ["https://app.example.com".to_owned()];
        check(
            Source {
                method: &method,
                uri: &uri,
                headers: &map,
                changes_state,
            },
            &trusted,
        )
    }

    #[test]
    fn go_s_decision_table_holds() {
        const SITE: &str = "sec-fetch-site";
        const ORIGIN: &str = "origin";
        /// Method, changes state, headers, refused.
        type Case = (Method, bool, &'static [(&'static str, &'static str)], bool);
        let table: &[Case] = &[
            // Safe methods pass whatever they say, unless they change state.
            (Method::GET, false, &[(SITE, "cross-site")], false),
            (Method::OPTIONS, false, &[(SITE, "cross-site")], false),
            (Method::GET, true, &[(SITE, "cross-site")], true),
            (Method::HEAD, true, &[(SITE, "same-site")], true),
            // Sec-Fetch-Site decides when present.
            (Method::POST, false, &[(SITE, "same-origin")], false),
            (Method::POST, false, &[(SITE, "none")], false),
            (Method::POST, false, &[(SITE, "same-site")], true),
            (
                Method::POST,
                false,
                &[(SITE, "cross-site"), (ORIGIN, "https://api.example.com")],
                true,
            ),
            // Without it, Origin against Host.
            (
                Method::POST,
                false,
                &[(ORIGIN, "https://api.example.com")],
                false,
            ),
            (
                Method::POST,
                false,
                &[(ORIGIN, "http://API.example.com")],
                false,
            ),
            (
                Method::POST,
                false,
                &[(ORIGIN, "https://evil.example")],
                true,
            ),
            (Method::POST, false, &[(ORIGIN, "null")], true),
            // Neither: curl, scripts.
            (Method::POST, false, &[], false),
            (Method::PUT, true, &[], false),
            // A trusted origin passes either way.
            (
                Method::POST,
                false,
                &[(SITE, "cross-site"), (ORIGIN, "https://app.example.com")],
                false,
            ),
            (
                Method::POST,
                false,
                &[(ORIGIN, "https://app.example.com")],
                false,
            ),
            (
                Method::POST,
                false,
                &[
                    (SITE, "cross-site"),
                    (ORIGIN, "https://app.example.com:8443"),
                ],
                true,
            ),
        ];
        for (method, changes_state, headers, refused) in table {
            let decision = decide(method.clone(), *changes_state, headers);
            assert_eq!(
                decision.is_err(),
                *refused,
                "{method} (changes state: {changes_state}) with {headers:?}: {decision:?}"
            );
        }
    }
}
