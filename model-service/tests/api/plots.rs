//! Plots: valid PNG and SVG of the requested size, that change with the data.

use crate::helpers::{decode_png, spawn_app, spawn_app_with, svg_size};

async fn png(app: &crate::helpers::TestApp, path: &str) -> (u32, u32, Vec<u8>) {
    let response = app.get(path).await;
    assert_eq!(response.status().as_u16(), 200, "{path}");
    assert_eq!(response.headers()["content-type"], "image/png");
    decode_png(&response.bytes().await.unwrap())
}

async fn svg(app: &crate::helpers::TestApp, path: &str) -> String {
    let response = app.get(path).await;
    assert_eq!(response.status().as_u16(), 200, "{path}");
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    response.text().await.unwrap()
}

#[tokio::test]
async fn posterior_plots_are_valid_png_and_svg_of_the_requested_size() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;

    let (w, h, pixels) = png(&app, "/models/globe/posterior.png").await;
    assert_eq!((w, h), (800, 600));
    assert_eq!(pixels.len(), 800 * 600 * 3);
    for (width, height) in [(200, 150), (1234, 567), (640, 1000)] {
        let (w, h, _) = png(
            &app,
            &format!("/models/globe/posterior.png?width={width}&height={height}"),
        )
        .await;
        assert_eq!((w, h), (width, height));
        let text = svg(
            &app,
            &format!("/models/globe/posterior.svg?width={width}&height={height}"),
        )
        .await;
        assert_eq!(svg_size(&text), (width, height));
    }

    let text = svg(&app, "/models/globe/posterior.svg").await;
    assert_eq!(svg_size(&text), (800, 600));
    for label in [
        "proportion of successes p",
        "probability",
        "globe: 6 successes in 9 trials",
        "89% HPDI",
        "prior (uniform)",
    ] {
        assert!(text.contains(label), "the SVG lacks {label:?}");
    }
}

#[tokio::test]
async fn the_pixels_change_when_the_posterior_changes() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    let path = "/models/globe/posterior.png?width=400&height=300";
    let (_, _, before) = png(&app, path).await;
    let (_, _, cached) = png(&app, path).await;
    assert_eq!(before, cached, "the same data draws the same picture");

    app.publish("globe", 0, 30).await;
    let (_, _, after) = png(&app, path).await;
    assert_ne!(before, after);

    // Time travel draws the old picture again.
    let (_, _, old) = png(&app, &format!("{path}&version=1")).await;
    assert_eq!(before, old);

    // So does a different mass (the shaded band) and a different prior.
    let (_, _, narrow) = png(&app, &format!("{path}&mass=0.5")).await;
    assert_ne!(after, narrow);
    app.configure("globe", domain::Prior::Beta { a: 20.0, b: 2.0 }, None)
        .await;
    let (_, _, reconfigured) = png(&app, path).await;
    assert_ne!(after, reconfigured);
}

#[tokio::test]
async fn two_models_with_different_data_draw_different_pictures() {
    let app = spawn_app().await;
    app.publish_many(&[("a", 6, 3), ("b", 3, 6)]).await;
    let (_, _, a) = png(&app, "/models/a/posterior.png?width=300&height=200").await;
    let (_, _, b) = png(&app, "/models/b/posterior.png?width=300&height=200").await;
    assert_ne!(a, b);
}

#[tokio::test]
async fn history_plots_are_valid_png_and_svg_of_the_requested_size() {
    let app = spawn_app().await;
    for (s, f) in [(6, 3), (1, 1), (0, 5), (4, 0)] {
        app.publish("globe", s, f).await;
    }
    let (w, h, pixels) = png(&app, "/models/globe/history.png?width=500&height=300").await;
    assert_eq!((w, h), (500, 300));
    assert!(pixels.iter().any(|&c| c != 255), "something is drawn");
    let text = svg(&app, "/models/globe/history.svg?width=700&height=400").await;
    assert_eq!(svg_size(&text), (700, 400));
    assert!(text.contains("number of observations"));

    let (_, _, early) = png(
        &app,
        "/models/globe/history.png?width=500&height=300&version=1",
    )
    .await;
    assert_ne!(early, pixels);
}

#[tokio::test]
async fn a_plot_of_a_huge_posterior_is_drawn() {
    let app = spawn_app().await;
    // 10^9 observations: the whole posterior sits between two grid points.
    app.publish("globe", 700_000_000, 300_000_000).await;
    let (w, h, _) = png(&app, "/models/globe/posterior.png").await;
    assert_eq!((w, h), (800, 600));
    let (w, h, _) = png(&app, "/models/globe/history.png").await;
    assert_eq!((w, h), (800, 600));
}

#[tokio::test]
async fn bad_plot_sizes_are_rejected() {
    let app = spawn_app_with(|s| {
        s.model_service.max_plot_width = 1000;
        s.model_service.max_plot_height = 900;
    })
    .await;
    app.publish("globe", 6, 3).await;
    for query in [
        "width=0",
        "width=199",
        "height=149",
        "width=1001",
        "height=901",
        "width=-5",
        "width=wide",
        "width=99999999999",
    ] {
        for path in [
            "posterior.png",
            "posterior.svg",
            "history.png",
            "history.svg",
        ] {
            app.get_error(
                &format!("/models/globe/{path}?{query}"),
                422,
                "invalid_parameter",
            )
            .await;
        }
    }
    let (w, h, _) = png(&app, "/models/globe/posterior.png?width=1000&height=900").await;
    assert_eq!((w, h), (1000, 900));
    app.get_errors(&[
        ("/models/nope/posterior.png", 404, "model_not_found"),
        (
            "/models/globe/posterior.svg?version=9",
            404,
            "version_not_found",
        ),
    ])
    .await;
}

#[tokio::test]
async fn a_burst_of_identical_plot_requests_gets_identical_bytes() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    let path = "/models/globe/posterior.png?width=640&height=480&mass=0.8";
    let requests = (0..16).map(|_| async { app.get(path).await.bytes().await.unwrap() });
    let bodies = futures::future::join_all(requests).await;
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    decode_png(&bodies[0]);
}
