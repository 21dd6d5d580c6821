//! Posterior queries: the numbers served are the engine's, at any version.

use domain::bayes::{compare, Counts, DisplayGrid, GridSize, Posterior};
use domain::Prior;
use platform::store::entities::model_history;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with};

fn engine_summary(prior: &Prior, s: u64, f: u64, mass: f64) -> Value {
    let posterior = Posterior::new(prior, Counts::new(s, f)).unwrap();
    serde_json::to_value(posterior.summary(mass).unwrap()).unwrap()
}

#[tokio::test]
async fn the_served_posterior_is_the_engines_for_every_kind_of_prior() {
    let app = spawn_app().await;
    let priors = [
        ("flat", Prior::Uniform, 1000),
        ("beta", Prior::Beta { a: 2.0, b: 5.0 }, 200),
        (
            "step",
            Prior::Step {
                lower: 0.5,
                upper: 1.0,
            },
            1000,
        ),
        (
            "grid",
            Prior::Grid {
                weights: vec![0.0, 1.0, 3.0, 1.0],
            },
            37,
        ),
    ];
    for (id, prior, grid) in &priors {
        app.configure(id, prior.clone(), Some(*grid)).await;
    }
    app.publish_many(&[
        ("flat", 6, 3),
        ("beta", 60, 30),
        ("step", 6, 3),
        ("grid", 2, 7),
    ])
    .await;

    for (id, prior, grid) in &priors {
        for mass in [0.5, 0.89, 0.97] {
            let body = app
                .get_json(&format!("/models/{id}/posterior?mass={mass}"), 200)
                .await;
            let (s, f) = match *id {
                "beta" => (60, 30),
                "grid" => (2, 7),
                _ => (6, 3),
            };
            assert_eq!(
                body["summary"],
                engine_summary(prior, s, f, mass),
                "{id} at {mass}"
            );
            assert_eq!(body["prior"], serde_json::to_value(prior).unwrap());
            assert_eq!(
                (&body["successes"], &body["failures"]),
                (&json!(s), &json!(f))
            );
            assert_eq!(body["trials"], s + f);
            assert_eq!(body["grid_size"], *grid);

            let posterior = Posterior::new(prior, Counts::new(s, f)).unwrap();
            let display = DisplayGrid::new(&posterior, GridSize::parse(*grid).unwrap());
            assert_eq!(body["grid"]["p"], serde_json::to_value(&display.p).unwrap());
            assert_eq!(
                body["grid"]["prior"],
                serde_json::to_value(&display.prior).unwrap()
            );
            assert_eq!(
                body["grid"]["posterior"],
                serde_json::to_value(&display.posterior).unwrap()
            );
            assert_eq!(body["grid"]["map"], json!(display.map()));
        }
    }
}

#[tokio::test]
async fn the_default_posterior_is_the_default_models() {
    let app = spawn_app_with(|s| {
        s.models.default_model = domain::ModelId::parse("earth").unwrap();
    })
    .await;
    app.get_error("/posterior", 404, "model_not_found").await;
    app.publish("earth", 6, 3).await;
    let body = app.get_json("/posterior", 200).await;
    assert_eq!(body["model"], "earth");
    assert_eq!(body["summary"], engine_summary(&Prior::Uniform, 6, 3, 0.89));
    assert_eq!(body["summary"]["mass"], 0.89);
}

#[tokio::test]
async fn the_grid_can_be_left_out() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    let body = app
        .get_json("/models/globe/posterior?grid=false", 200)
        .await;
    assert!(body.get("grid").is_none(), "{body}");
    assert_eq!(body["summary"], engine_summary(&Prior::Uniform, 6, 3, 0.89));
}

#[tokio::test]
async fn a_mass_outside_zero_to_one_is_rejected() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    for mass in ["0", "1", "-0.1", "1.5", "NaN", "inf", "abc", ""] {
        for path in [
            "/models/globe/posterior",
            "/models/globe/posterior.png",
            "/models/globe/history",
            "/compare?a=globe&b=globe&x=1",
        ] {
            let separator = if path.contains('?') { '&' } else { '?' };
            let message = app
                .get_error(
                    &format!("{path}{separator}mass={mass}"),
                    422,
                    "invalid_parameter",
                )
                .await;
            assert!(message.contains("mass"), "{path} mass={mass}: {message}");
        }
    }
}

#[tokio::test]
async fn version_answers_as_of_that_version() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    app.publish("globe", 1, 1).await;
    app.publish("globe", 0, 5).await;

    let cases = [(0, 0, 0), (1, 6, 3), (2, 7, 4), (3, 7, 9)];
    for (version, s, f) in cases {
        let body = app
            .get_json(&format!("/models/globe/posterior?version={version}"), 200)
            .await;
        assert_eq!(body["version"], version);
        assert_eq!(
            (&body["successes"], &body["failures"]),
            (&json!(s), &json!(f))
        );
        assert_eq!(body["summary"], engine_summary(&Prior::Uniform, s, f, 0.89));
    }
    let current = app.get_json("/models/globe/posterior", 200).await;
    assert_eq!(current["version"], 3);

    let message = app
        .get_error(
            "/models/globe/posterior?version=4",
            404,
            "version_not_found",
        )
        .await;
    assert!(message.contains("unknown version 4"), "{message}");
    // Past i64 (what Postgres stores) is out of range, not a missing version.
    for version in ["9223372036854775808", "-1", "two"] {
        let path = format!("/models/globe/posterior?version={version}");
        app.get_error(&path, 422, "invalid_parameter").await;
    }
}

#[tokio::test]
async fn at_answers_as_of_the_last_version_applied_by_then() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    app.publish("globe", 1, 1).await;
    let history = model_history::Entity::find()
        .order_by_asc(model_history::Column::Version)
        .all(&app.db)
        .await
        .unwrap();
    let first = history[0].applied_at;
    let second = history[1].applied_at;
    assert!(first < second);

    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let version_at = |time: String| {
        let app = &app;
        async move {
            app.get_json(&format!("/models/globe/posterior?at={time}"), 200)
                .await["version"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(version_at(at(first)).await, 1);
    assert_eq!(version_at(at(second)).await, 2);
    assert_eq!(
        version_at(at(first - chrono::Duration::microseconds(1))).await,
        0
    );
    assert_eq!(version_at("2999-01-01T00:00:00Z".into()).await, 2);
    // An offset's "+" sent unencoded arrives as a space; it still parses.
    assert_eq!(version_at("2999-01-01T00:00:00+02:00".into()).await, 2);

    let body = app
        .get_json(&format!("/models/globe/posterior?at={}", at(first)), 200)
        .await;
    assert_eq!(body["summary"], engine_summary(&Prior::Uniform, 6, 3, 0.89));
    assert_eq!(body["updated_at"], json!(first));

    app.get_error(
        "/models/globe/posterior?at=yesterday",
        422,
        "invalid_parameter",
    )
    .await;
    // With both, the earlier of the two points answers.
    let both = |version: u64, time: String| {
        let app = &app;
        async move {
            app.get_json(
                &format!("/models/globe/posterior?version={version}&at={time}"),
                200,
            )
            .await["version"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(both(2, at(first)).await, 1);
    assert_eq!(both(1, at(second)).await, 1);
    assert_eq!(
        both(2, at(first - chrono::Duration::microseconds(1))).await,
        0
    );
}

#[tokio::test]
async fn history_lists_every_version_with_the_engines_mean_and_hpdi() {
    let app = spawn_app().await;
    let steps = [(6, 3), (1, 1), (0, 5), (4, 0), (2, 2)];
    for (s, f) in steps {
        app.publish("globe", s, f).await;
    }
    let check = |point: &Value, version: u64, s: u64, f: u64, mass: f64| {
        let posterior = Posterior::new(&Prior::Uniform, Counts::new(s, f)).unwrap();
        assert_eq!(point["version"], version);
        assert_eq!(
            (&point["successes"], &point["failures"]),
            (&json!(s), &json!(f))
        );
        assert_eq!(point["mean"], json!(posterior.mean()));
        assert_eq!(
            point["hpdi"],
            serde_json::to_value(posterior.hpdi(mass).unwrap()).unwrap()
        );
    };

    let page = app
        .get_json("/models/globe/history?limit=3&mass=0.5", 200)
        .await;
    assert_eq!(page["mass"], 0.5);
    let versions = page["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3);
    check(&versions[0], 0, 0, 0, 0.5);
    check(&versions[1], 1, 6, 3, 0.5);
    check(&versions[2], 2, 7, 4, 0.5);
    assert_eq!(versions[2]["delta_successes"], 1);
    assert_eq!(versions[2]["delta_failures"], 1);
    assert_eq!(page["next_after"], 2);

    let rest = app
        .get_json("/models/globe/history?after=2&limit=3&mass=0.5", 200)
        .await;
    let versions = rest["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3);
    check(&versions[0], 3, 7, 9, 0.5);
    check(&versions[2], 5, 13, 11, 0.5);
    assert!(rest.get("next_after").is_none(), "{rest}");

    for query in ["limit=0", "limit=1001", "after=x"] {
        app.get_error(
            &format!("/models/globe/history?{query}"),
            422,
            "invalid_parameter",
        )
        .await;
    }
    app.get_error("/models/nope/history", 404, "model_not_found")
        .await;
}

#[tokio::test]
async fn predictive_is_the_engines_distribution_of_future_successes() {
    let app = spawn_app_with(|s| s.model_service.max_trials = 50).await;
    app.publish("globe", 6, 3).await;
    let body = app.get_json("/models/globe/predictive?trials=9", 200).await;
    let expected = Posterior::new(&Prior::Uniform, Counts::new(6, 3))
        .unwrap()
        .predictive(9)
        .unwrap();
    assert_eq!(
        body["probabilities"],
        serde_json::to_value(&expected).unwrap()
    );
    assert_eq!(body["trials"], 9);
    let mean: f64 = expected.iter().enumerate().map(|(k, p)| k as f64 * p).sum();
    assert!((body["mean"].as_f64().unwrap() - mean).abs() < 1e-12);

    // As of version 0, the prior predictive: uniform over 0..=n for a flat prior.
    let prior = app
        .get_json("/models/globe/predictive?trials=4&version=0", 200)
        .await;
    for p in prior["probabilities"].as_array().unwrap() {
        assert!((p.as_f64().unwrap() - 0.2).abs() < 1e-9, "{prior}");
    }

    app.get_json("/models/globe/predictive?trials=50", 200)
        .await;
    app.get_json("/models/globe/predictive?trials=0", 200).await;
    let message = app
        .get_error(
            "/models/globe/predictive?trials=51",
            422,
            "invalid_parameter",
        )
        .await;
    assert!(message.contains("at most 50"), "{message}");
    app.get_errors(&[
        ("/models/globe/predictive", 422, "invalid_parameter"),
        (
            "/models/globe/predictive?trials=-3",
            422,
            "invalid_parameter",
        ),
        ("/models/nope/predictive?trials=3", 404, "model_not_found"),
    ])
    .await;
}

#[tokio::test]
async fn samples_are_the_engines_draws_and_repeat_for_a_seed() {
    let app = spawn_app_with(|s| s.model_service.max_samples = 500).await;
    app.publish("globe", 6, 3).await;
    let body = app
        .get_json("/models/globe/samples?n=100&seed=42", 200)
        .await;
    let expected = Posterior::new(&Prior::Uniform, Counts::new(6, 3))
        .unwrap()
        .samples(100, 42);
    assert_eq!(body["samples"], serde_json::to_value(&expected).unwrap());
    assert_eq!(body["seed"], 42);
    assert_eq!(body["version"], 1);

    // Without a seed, the one chosen is returned and reproduces the draws.
    let random = app.get_json("/models/globe/samples?n=20", 200).await;
    let seed = random["seed"].as_u64().unwrap();
    let again = app
        .get_json(&format!("/models/globe/samples?n=20&seed={seed}"), 200)
        .await;
    assert_eq!(random["samples"], again["samples"]);

    let default = app.get_json("/models/globe/samples?seed=1", 200).await;
    assert_eq!(default["samples"].as_array().unwrap().len(), 500);

    for query in ["n=501", "n=0", "n=-1", "seed=x"] {
        app.get_error(
            &format!("/models/globe/samples?{query}"),
            422,
            "invalid_parameter",
        )
        .await;
    }
}

#[tokio::test]
async fn compare_is_the_engines_comparison_of_two_models() {
    let app = spawn_app().await;
    app.configure("b", Prior::Beta { a: 2.0, b: 2.0 }, None)
        .await;
    app.publish_many(&[("a", 60, 40), ("b", 45, 55)]).await;

    let body = app.get_json("/compare?a=a&b=b&mass=0.9", 200).await;
    let prior_b = Prior::Beta { a: 2.0, b: 2.0 };
    let pa = Posterior::new(&Prior::Uniform, Counts::new(60, 40)).unwrap();
    let pb = Posterior::new(&prior_b, Counts::new(45, 55)).unwrap();
    let expected = compare(&pa, &pb, 0.9).unwrap();
    assert_eq!(body["prob_a_greater"], json!(expected.prob_a_greater));
    assert_eq!(
        body["difference"],
        serde_json::to_value(expected.difference).unwrap()
    );
    assert_eq!(
        body["a"]["summary"],
        engine_summary(&Prior::Uniform, 60, 40, 0.9)
    );
    assert_eq!(body["b"]["summary"], engine_summary(&prior_b, 45, 55, 0.9));
    assert_eq!(
        (&body["a"]["model"], &body["b"]["version"]),
        (&json!("a"), &json!(1))
    );

    app.get_errors(&[
        ("/compare?a=a&b=nope", 404, "model_not_found"),
        ("/compare?a=a", 422, "invalid_parameter"),
        ("/compare?b=b", 422, "invalid_parameter"),
    ])
    .await;
}

#[tokio::test]
async fn time_travel_answers_with_the_prior_in_force_then() {
    use platform::store::entities::model_configs;
    let app = spawn_app().await;
    let beta = Prior::Beta { a: 2.0, b: 2.0 };
    let step = Prior::Step {
        lower: 0.5,
        upper: 1.0,
    };
    // Created by its data with the default (uniform) prior, then
    // reconfigured after version 1 and again after version 2.
    app.publish("globe", 6, 3).await;
    let put = |prior: &Prior| {
        let body = json!({ "prior": prior });
        let app = &app;
        async move { assert_eq!(app.put_json("/models/globe", &body).await.status(), 200) }
    };
    put(&beta).await;
    app.publish("globe", 1, 1).await;
    put(&step).await;

    let served = |query: String| {
        let app = &app;
        async move {
            let body = app
                .get_json(&format!("/models/globe/posterior?grid=false&{query}"), 200)
                .await;
            let prior: Prior = serde_json::from_value(body["prior"].clone()).unwrap();
            let counts = (
                body["successes"].as_u64().unwrap(),
                body["failures"].as_u64().unwrap(),
            );
            assert_eq!(
                body["summary"],
                engine_summary(&prior, counts.0, counts.1, 0.89),
                "{query}"
            );
            (body["version"].as_u64().unwrap(), prior)
        }
    };
    // By version: the last configuration set while the model was at it.
    assert_eq!(served("version=0".into()).await, (0, Prior::Uniform));
    assert_eq!(served("version=1".into()).await, (1, beta.clone()));
    assert_eq!(served("version=2".into()).await, (2, step.clone()));

    // By time: what was served then, around each write.
    let history = model_history::Entity::find()
        .order_by_asc(model_history::Column::Version)
        .all(&app.db)
        .await
        .unwrap();
    let configs = model_configs::Entity::find()
        .order_by_asc(model_configs::Column::Seq)
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(configs.len(), 3, "{configs:?}");
    let (v1, v2) = (history[0].applied_at, history[1].applied_at);
    let (set_beta, set_step) = (configs[1].configured_at, configs[2].configured_at);
    // The stamps follow commit order.
    assert!(v1 < set_beta && set_beta < v2 && v2 < set_step);
    let at = |t: chrono::DateTime<chrono::Utc>| {
        format!(
            "at={}",
            t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    };
    let before = |t: chrono::DateTime<chrono::Utc>| at(t - chrono::Duration::microseconds(1));
    assert_eq!(served(at(v1)).await, (1, Prior::Uniform));
    assert_eq!(served(before(set_beta)).await, (1, Prior::Uniform));
    assert_eq!(served(at(set_beta)).await, (1, beta.clone()));
    assert_eq!(served(at(v2)).await, (2, beta.clone()));
    assert_eq!(served(at(set_step)).await, (2, step.clone()));
    // Both: the earlier point, with its prior.
    assert_eq!(
        served(format!("version=2&{}", at(set_beta))).await,
        (1, beta.clone())
    );
    assert_eq!(
        served(format!("version=1&{}", at(set_step))).await,
        (1, beta)
    );
}

#[tokio::test]
async fn a_window_answers_from_the_observations_committed_inside_it_only() {
    let app = spawn_app().await;
    app.configure("globe", Prior::Beta { a: 2.0, b: 2.0 }, None)
        .await;
    app.publish("globe", 6, 3).await;
    app.publish("globe", 1, 4).await;
    app.publish("globe", 2, 0).await;
    app.publish("coin", 5, 5).await;
    let history = model_history::Entity::find()
        .order_by_asc(model_history::Column::AppliedAt)
        .all(&app.db)
        .await
        .unwrap();
    let first = history[0].applied_at;
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

    // After version 1: versions 2 and 3 only, 3 successes and 4 failures.
    let body = app
        .get_json(
            &format!("/models/globe/posterior?since={}", stamp(first)),
            200,
        )
        .await;
    assert_eq!(
        (body["successes"].clone(), body["failures"].clone()),
        (json!(3), json!(4))
    );
    assert_eq!(body["version"], 3);
    assert_eq!(body["window"]["from_version"], 1);
    assert_eq!(
        body["summary"],
        engine_summary(&Prior::Beta { a: 2.0, b: 2.0 }, 3, 4, 0.89)
    );
    // A window that ends at `at`: versions 2 only.
    let second = history[1].applied_at;
    let body = app
        .get_json(
            &format!(
                "/models/globe/posterior?since={}&at={}",
                stamp(first),
                stamp(second)
            ),
            200,
        )
        .await;
    assert_eq!(
        (body["successes"].clone(), body["failures"].clone()),
        (json!(1), json!(4))
    );
    // A window reaching before the first data: everything.
    let body = app
        .get_json("/models/globe/posterior?window=3650d", 200)
        .await;
    assert_eq!(
        (body["successes"].clone(), body["failures"].clone()),
        (json!(9), json!(7))
    );
    assert_eq!(body["window"]["from_version"], 0);
    // The same window on both sides of a comparison.
    let body = app
        .get_json(
            &format!("/compare?a=globe&b=coin&since={}", stamp(first)),
            200,
        )
        .await;
    assert_eq!(body["a"]["successes"], 3);
    assert_eq!(body["b"]["successes"], 5);
    let a = Posterior::new(&Prior::Beta { a: 2.0, b: 2.0 }, Counts::new(3, 4)).unwrap();
    let b = Posterior::new(&Prior::Uniform, Counts::new(5, 5)).unwrap();
    let want = compare(&a, &b, 0.89).unwrap();
    assert_eq!(body["prob_a_greater"], json!(want.prob_a_greater));

    for bad in [
        "since=yesterday",
        "window=soon",
        "window=0s",
        "window=1 d",
        "window=1000000d",
    ] {
        app.get_error(
            &format!("/models/globe/posterior?{bad}"),
            422,
            "invalid_parameter",
        )
        .await;
    }
    // With both, the later start: `since` here, inside the last ten years.
    let body = app
        .get_json(
            &format!(
                "/models/globe/posterior?window=3650d&since={}",
                stamp(first)
            ),
            200,
        )
        .await;
    assert_eq!(body["window"]["from_version"], 1);
    // A window that starts after the version answered holds nothing.
    let body = app
        .get_json(
            &format!("/models/globe/posterior?version=1&since={}", stamp(second)),
            200,
        )
        .await;
    assert_eq!(body["trials"], 0);
    // One that reaches before year 1 starts there: everything.
    let body = app
        .get_json(
            "/models/globe/posterior?window=999999w&at=0163-09-06T15:08:44Z",
            200,
        )
        .await;
    assert_eq!(body["trials"], 0);
}
