//! Requests a web page of another site could make a browser send (simple
//! requests need no CORS preflight) are refused; the same requests from
//! curl or a script, and from the service's own or a trusted origin, pass.
//! And the `Host` allow-list.

use reqwest::Method;

use crate::helpers::{spawn_app_with, spawn_app_with_database, Answer, TestApp};

const FROM_ANOTHER_SITE: [(&str, &str); 2] = [
    ("sec-fetch-site", "cross-site"),
    ("origin", "https://evil.example"),
];
/// An older browser: no `Sec-Fetch-Site`, an `Origin` of another host.
const FROM_ANOTHER_ORIGIN: [(&str, &str); 1] = [("origin", "https://evil.example")];

async fn post_text(app: &TestApp, headers: &[(&str, &str)]) -> Answer {
    app.send(
        Method::POST,
        "/observations?model=globe",
        Some("text/plain"),
        headers,
        "w",
    )
    .await
}

#[tokio::test]
async fn a_text_plain_post_from_another_site_is_refused_and_produces_nothing() {
    let app = spawn_app_with(|_| {}).await;
    for headers in [&FROM_ANOTHER_SITE[..], &FROM_ANOTHER_ORIGIN[..]] {
        post_text(&app, headers)
            .await
            .assert_error(403, "cross_origin_request", "cross");
    }
    app.assert_nothing_was_produced().await;
}

#[tokio::test]
async fn a_text_plain_post_from_curl_the_same_origin_or_a_trusted_origin_is_accepted() {
    let app = spawn_app_with(|s| s.http.trusted_origins = vec!["https://app.example".into()]).await;
    let own_origin = format!("http://127.0.0.1:{}", app.port);
    for headers in [
        &[][..],
        &[("sec-fetch-site", "same-origin")][..],
        &[("origin", own_origin.as_str())][..],
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://app.example"),
        ][..],
    ] {
        let answer = post_text(&app, headers).await;
        assert_eq!(answer.status, 202, "{headers:?}: {}", answer.text);
    }
}

#[tokio::test]
async fn the_seed_s_get_update_model_from_another_site_is_refused_and_from_curl_accepted() {
    let app = spawn_app_with(|_| {}).await;
    for method in [Method::GET, Method::HEAD] {
        let answer = app
            .send(
                method.clone(),
                "/update_model/w",
                None,
                &FROM_ANOTHER_SITE,
                "",
            )
            .await;
        assert_eq!(answer.status, 403, "{method}: {}", answer.text);
    }
    app.send(
        Method::GET,
        "/update_model/w",
        None,
        &FROM_ANOTHER_ORIGIN,
        "",
    )
    .await
    .assert_error(403, "cross_origin_request", "evil.example");
    app.assert_nothing_was_produced().await;
    let answer = app.get("/update_model/w").await;
    assert!(answer.status < 300, "{}", answer.text);
}

#[tokio::test]
async fn a_multipart_upload_from_another_site_is_refused_and_from_curl_accepted() {
    let app = spawn_app_with_database(|_| {}).await;
    let form = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\
                Content-Type: text/csv\r\n\r\nmodel,outcome\nglobe,w\n\r\n--b--\r\n";
    let multipart = Some("multipart/form-data; boundary=b");
    app.send(
        Method::POST,
        "/uploads",
        multipart,
        &FROM_ANOTHER_SITE,
        form,
    )
    .await
    .assert_error(403, "cross_origin_request", "cross-site");
    let answer = app
        .send(Method::POST, "/uploads", multipart, &[], form)
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
}

#[tokio::test]
async fn a_host_outside_the_allow_list_is_refused_with_421_except_on_the_probes() {
    let app = spawn_app_with(|s| s.http.allowed_hosts = vec!["api.example.com".into()]).await;
    let evil = [("host", "evil.example")];
    post_text(&app, &evil)
        .await
        .assert_error(421, "misdirected_request", "evil.example");
    let answer = post_text(&app, &[("host", "API.example.com:8000")]).await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    for probe in ["/healthz", "/metrics"] {
        let answer = app.send(Method::GET, probe, None, &evil, "").await;
        assert_eq!(answer.status, 200, "{probe}: {}", answer.text);
    }
    // Without the list, any host is served.
    let open = spawn_app_with(|_| {}).await;
    let answer = post_text(&open, &evil).await;
    assert_eq!(answer.status, 202, "{}", answer.text);
}
