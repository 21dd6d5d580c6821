//! The dashboard: served as HTML, and live in a real (headless) Chromium.

use std::path::PathBuf;
use std::time::Duration;

use crate::browser::Browser;
use crate::helpers::{decode_png, eventually, spawn_app};

#[tokio::test]
async fn the_dashboard_is_one_html_page_that_listens_for_events() {
    let app = spawn_app().await;
    let response = app.get("/").await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = response.text().await.unwrap();
    // The live feed is read with the reader's key, as the data is.
    assert!(page.contains("api(\"/events\")") && page.contains("follow("));
    assert!(!page.contains("/*API_JS*/"));
    assert!(page.contains("id=\"trials\""));
}

/// Where screenshots go: the target directory this test was built in.
fn target_dir() -> PathBuf {
    // .../target/debug/deps/api-<hash>: three levels up is the target directory.
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
}

#[tokio::test]
async fn the_dashboard_in_headless_chromium_shows_new_data_live() {
    let app = spawn_app().await;
    app.publish_many(&[("globe", 6, 3), ("coin", 4, 4)]).await;

    // Missing Chromium or chromedriver fails the test: it is never skipped.
    let browser = Browser::launch(1280, 1000).await;
    browser.open(&app.url("/#globe")).await;
    let text = |id: &str| format!("document.getElementById('{id}').textContent");

    // The page loads the model and connects to the live feed.
    let deadline = Duration::from_secs(30);
    let mut seen = String::new();
    let start = tokio::time::Instant::now();
    while seen != "9" {
        seen = browser
            .eval(&text("trials"))
            .await
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(start.elapsed() < deadline, "the page never showed 9 trials");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eventually(deadline, "the page's event stream", || {
        let subscribers = app.state.subscribers();
        async move { (subscribers >= 1).then_some(()) }
    })
    .await;

    // New data arrives through the consumer's path: the page updates by itself.
    app.publish("globe", 3, 1).await;
    let start = tokio::time::Instant::now();
    loop {
        let trials = browser.eval(&text("trials")).await;
        let version = browser.eval(&text("version")).await;
        if trials == "13" && version == "2" {
            break;
        }
        assert!(
            start.elapsed() < deadline,
            "the page still shows {trials} trials at version {version}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list = browser
        .eval("document.getElementById('model-list').textContent")
        .await;
    assert!(list.as_str().unwrap().contains("coin"), "{list}");
    let mean = browser.eval(&text("mean")).await;
    let engine =
        domain::bayes::Posterior::new(&domain::Prior::Uniform, domain::bayes::Counts::new(9, 4))
            .unwrap()
            .mean();
    assert_eq!(mean, format!("{engine:.4}").as_str());

    // Both plots of version 2 have loaded.
    let plots_loaded = "['posterior-plot', 'history-plot'].every(id => { \
         const img = document.getElementById(id); \
         return img.complete && img.naturalWidth > 0 && (img.dataset.src || '').includes('version=2'); })";
    let start = tokio::time::Instant::now();
    while browser.eval(plots_loaded).await != true {
        assert!(start.elapsed() < deadline, "the plots did not load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let shot = browser.screenshot().await;
    browser.close().await;
    let path = target_dir().join("dashboard.png");
    std::fs::write(&path, &shot).expect("write the screenshot");
    eprintln!("dashboard screenshot: {}", path.display());
    let (width, height, pixels) = decode_png(&shot);
    assert_eq!((width, height), (1280, 1000));
    assert!(
        pixels.iter().any(|&c| c < 128),
        "the screenshot is not blank"
    );
}

/// Polls `expression` in the page until it equals `want`, failing after 30 s.
async fn wait_for(browser: &Browser, expression: &str, want: &serde_json::Value) {
    let start = tokio::time::Instant::now();
    loop {
        let got = browser.eval(expression).await;
        if &got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{expression} is still {got}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// In the page: whether element `id` is shown and its text holds `needle`.
fn shown_with(id: &str, needle: &str) -> String {
    format!(
        "(() => {{ const e = document.getElementById('{id}'); \
         return !!e && e.offsetParent !== null && e.textContent.includes('{needle}'); }})()"
    )
}

/// In the page: how many images are shown, and how many plots were requested.
const IMAGES_SHOWN_AND_PLOTS_ASKED: &str =
    "[[...document.images].filter(i => i.offsetParent !== null).length, \
     performance.getEntriesByType('resource').filter(e => /\\.(png|svg)/.test(e.name)).length]";

#[tokio::test]
async fn the_dashboard_without_a_model_says_what_to_do_and_asks_for_no_plot() {
    use serde_json::json;
    let app = spawn_app().await;
    let browser = Browser::launch(1280, 1000).await;

    // No models at all: how to send observations (the README's tour), and
    // no image, broken or not.
    browser.open(&app.url("/")).await;
    let curl = "curl -sS -X POST localhost:8000/observations";
    wait_for(&browser, &shown_with("no-models", curl), &json!(true)).await;
    assert_eq!(
        browser.eval(IMAGES_SHOWN_AND_PLOTS_ASKED).await,
        json!([0, 0])
    );

    // Models, but the link names one that is not there: choose one.
    app.publish_many(&[("coin", 4, 4)]).await;
    // A new page (the query makes it a load, not a move within the page,
    // which by now has chosen coin by itself).
    browser.open(&app.url("/?from=link#nope")).await;
    wait_for(
        &browser,
        &shown_with("choose", "no model nope"),
        &json!(true),
    )
    .await;
    assert_eq!(
        browser.eval(&shown_with("model-list", "coin")).await,
        json!(true)
    );
    assert_eq!(
        browser.eval(&shown_with("no-models", curl)).await,
        json!(false)
    );
    assert_eq!(
        browser.eval(IMAGES_SHOWN_AND_PLOTS_ASKED).await,
        json!([0, 0])
    );

    // Choosing one shows it, plots and all.
    browser.eval("(location.hash = 'coin', true)").await;
    let text = |id: &str| format!("document.getElementById('{id}').textContent");
    wait_for(&browser, &text("trials"), &json!("8")).await;
    wait_for(&browser, &shown_with("no-model", ""), &json!(false)).await;
    let plot_loaded = "(() => { const img = document.getElementById('posterior-plot'); \
         return img.offsetParent !== null && img.complete && img.naturalWidth > 0; })()";
    wait_for(&browser, plot_loaded, &json!(true)).await;
    browser.close().await;
}

#[tokio::test]
async fn the_experiment_page_in_headless_chromium_shows_figures_and_decision_live() {
    use serde_json::json;
    let app = spawn_app().await;
    let response = app
        .put_json(
            "/experiments/checkout/",
            &json!({"arms": ["checkout-a", "checkout-b", "checkout-c"], "planned_weights": [1, 1, 1]}),
        )
        .await;
    // A trailing slash names no route: the page's links never use one.
    assert_eq!(response.status(), 404);
    let response = app
        .put_json(
            "/experiments/checkout",
            &json!({"arms": ["checkout-a", "checkout-b", "checkout-c"], "planned_weights": [1, 1, 1]}),
        )
        .await;
    assert_eq!(response.status(), 201);
    app.publish_many(&[
        ("checkout-a", 100, 900),
        ("checkout-b", 110, 890),
        ("checkout-c", 95, 905),
    ])
    .await;
    // The page is static: it tells of an unknown experiment itself, and
    // only an id no experiment can have is a 404.
    assert_eq!(app.get("/experiments/nope/dashboard").await.status(), 200);
    app.get_error(
        "/experiments/Not%20Valid/dashboard",
        404,
        "experiment_not_found",
    )
    .await;

    let browser = Browser::launch(1280, 1100).await;
    browser
        .open(&app.url("/experiments/checkout/dashboard"))
        .await;
    let text = |id: &str| format!("document.getElementById('{id}').textContent");
    wait_for(&browser, &text("version"), &json!("version 3")).await;
    eventually(Duration::from_secs(30), "the page's event stream", || {
        let subscribers = app.state.subscribers();
        async move { (subscribers >= 1).then_some(()) }
    })
    .await;
    // The P(best) shown is the API's.
    let served = app.get_json("/experiments/checkout", 200).await;
    let shown = browser
        .eval("[...document.querySelectorAll('#arms td.prob-best')].map(td => td.textContent)")
        .await;
    let want: Vec<String> = served["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{:.2}%", 100.0 * r["prob_best"].as_f64().unwrap()))
        .collect();
    assert_eq!(shown, json!(want));
    assert_eq!(browser.eval(&text("decision")).await, json!("keep running"));

    // b pulls clearly ahead through the consumer's path: the page follows.
    app.publish_many(&[
        ("checkout-a", 1000, 9000),
        ("checkout-b", 2000, 8000),
        ("checkout-c", 1000, 9000),
    ])
    .await;
    wait_for(&browser, &text("decision"), &json!("ship checkout-b")).await;
    assert_eq!(browser.eval(&text("version")).await, json!("version 6"));
    let plots_loaded =
        "[['posteriors-plot', 'version=6'], ['history-plot', '_=6']].every(([id, v]) => { \
         const img = document.getElementById(id); \
         return img.complete && img.naturalWidth > 0 && (img.dataset.src || '').includes(v); })";
    wait_for(&browser, plots_loaded, &json!(true)).await;

    let shot = browser.screenshot().await;
    browser.close().await;
    let path = target_dir().join("experiment.png");
    std::fs::write(&path, &shot).expect("write the screenshot");
    eprintln!("experiment page screenshot: {}", path.display());
    let (width, height, pixels) = decode_png(&shot);
    assert_eq!((width, height), (1280, 1100));
    assert!(
        pixels.iter().any(|&c| c < 128),
        "the screenshot is not blank"
    );
}

#[tokio::test]
async fn with_keys_required_the_dashboard_asks_for_a_read_key_once_and_streams_with_it() {
    let app = crate::helpers::spawn_app_with(crate::keys::locked).await;
    let (_, token) = crate::keys::create_key(
        &app,
        serde_json::json!({"name": "screen", "scopes": ["read"]}),
    )
    .await;
    app.publish_many(&[("globe", 6, 3)]).await;

    let browser = Browser::launch(1280, 1000).await;
    browser.open(&app.url("/#globe")).await;
    // The page's first request was refused: it asks for a key.
    wait_for(
        &browser,
        "document.getElementById('key-form').hidden",
        &serde_json::json!(false),
    )
    .await;
    browser
        .eval(&format!(
            "(document.getElementById('key-input').value = '{token}', \
             document.getElementById('key-form').requestSubmit(), true)"
        ))
        .await;
    let text = |id: &str| format!("document.getElementById('{id}').textContent");
    wait_for(&browser, &text("trials"), &serde_json::json!("9")).await;
    // The live feed is a fetch stream sending the key.
    eventually(Duration::from_secs(30), "the page's event stream", || {
        let subscribers = app.state.subscribers();
        async move { (subscribers >= 1).then_some(()) }
    })
    .await;
    app.publish("globe", 3, 1).await;
    wait_for(&browser, &text("trials"), &serde_json::json!("13")).await;
    let plot_loaded = "(() => { const img = document.getElementById('posterior-plot'); \
         return img.complete && img.naturalWidth > 0 && (img.dataset.src || '').includes('version=2'); })()";
    wait_for(&browser, plot_loaded, &serde_json::json!(true)).await;

    // Entered once: a new visit finds the key and never asks again.
    browser.open(&app.url("/#globe")).await;
    wait_for(&browser, &text("trials"), &serde_json::json!("13")).await;
    assert_eq!(
        browser
            .eval("document.getElementById('key-form').hidden")
            .await,
        serde_json::json!(true)
    );
    browser.close().await;
}
