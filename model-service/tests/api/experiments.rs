//! Experiments: the figures served are the engine's for the arms' counts,
//! at any version, time or window; decisions, SRM, history and plots; the
//! bandit's weights and sticky assignments.

use domain::bayes::{
    bandit_weights, decide, experiment, srm, BanditOptions, Counts, ExperimentOptions, Posterior,
};
use domain::Prior;
use platform::store::entities::model_history;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{json, Value};

use crate::helpers::{decode_png, spawn_app, spawn_app_with, svg_size, TestApp};

async fn define(app: &TestApp, id: &str, body: Value) -> Value {
    let response = app.put_json(&format!("/experiments/{id}"), &body).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(status == 200 || status == 201, "{status}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn close(got: &Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{what}: {got}"));
    assert!(
        (got - want).abs() <= 1e-12 * want.abs().max(1.0),
        "{what}: served {got}, engine {want}"
    );
}

#[tokio::test]
async fn an_experiment_serves_the_engines_figures_and_decision_for_its_arms() {
    let app = spawn_app().await;
    app.configure("b", Prior::Beta { a: 2.0, b: 8.0 }, None)
        .await;
    let body = define(
        &app,
        "checkout",
        json!({"arms": ["a", "b", "c"], "control": "a", "planned_weights": [1, 1, 2]}),
    )
    .await;
    assert_eq!(body["threshold_of_caring"], 0.001);
    assert_eq!(body["rope"], 0.01);
    assert_eq!(body["bandit"]["min_trials"], 100);
    app.publish_many(&[("a", 120, 880), ("b", 150, 850), ("c", 290, 1710)])
        .await;

    let served = app.get_json("/experiments/checkout", 200).await;
    assert_eq!(served["version"], 3);
    let counts = [
        Counts::new(120, 880),
        Counts::new(150, 850),
        Counts::new(290, 1710),
    ];
    let priors = [
        Prior::Uniform,
        Prior::Beta { a: 2.0, b: 8.0 },
        Prior::Uniform,
    ];
    let posteriors: Vec<Posterior<'_>> = priors
        .iter()
        .zip(counts)
        .map(|(p, c)| Posterior::new(p, c).unwrap())
        .collect();
    let options = ExperimentOptions {
        mass: 0.89,
        rope: 0.01,
    };
    let want = experiment(&posteriors, 0, &options).unwrap();
    close(&served["expected_max"], want.expected_max, "E[max]");
    for (i, arm) in want.arms.iter().enumerate() {
        let got = &served["results"][i];
        close(&got["prob_best"], arm.prob_best, "P(best)");
        close(&got["expected_loss"], arm.expected_loss, "expected loss");
        close(&got["relative_loss"], arm.relative_loss, "relative loss");
        assert_eq!(got["trials"], counts[i].trials().unwrap());
        match (&arm.prob_beats_control, &arm.uplift) {
            (Some(beats), Some(uplift)) => {
                close(&got["prob_beats_control"], *beats, "P(> control)");
                close(&got["uplift"]["mean"], uplift.mean.unwrap(), "uplift mean");
                close(&got["uplift"]["median"], uplift.median, "uplift median");
                close(
                    &got["uplift"]["hpdi"]["lower"],
                    uplift.hpdi.lower,
                    "uplift HPDI",
                );
                close(
                    &got["uplift"]["prob_in_rope"],
                    uplift.prob_in_rope,
                    "P(ROPE)",
                );
            }
            _ => {
                assert_eq!(i, 0, "only the control lacks the uplift");
                assert!(got.get("uplift").is_none() && got["control"] == true);
            }
        }
    }
    let verdict = decide(&want, &["a", "b", "c"], 0, 0.001, 0.89);
    assert_eq!(served["decision"]["reason"], json!(verdict.reason));
    let want_srm = srm(&[1000, 1000, 2000], &[1.0, 1.0, 2.0]).unwrap();
    close(&served["srm"]["p_value"], want_srm.p_value, "SRM p-value");
    assert_eq!(served["srm"]["flagged"], false);

    // A split far from the plan is flagged.
    app.publish("c", 0, 3000).await;
    let served = app.get_json("/experiments/checkout", 200).await;
    assert_eq!(served["srm"]["flagged"], true, "{}", served["srm"]);
    let listed = app.get_json("/experiments", 200).await;
    assert_eq!(listed["experiments"][0]["experiment"], "checkout");
}

#[tokio::test]
async fn a_clear_winner_is_shipped_and_equal_arms_are_no_meaningful_difference() {
    let app = spawn_app().await;
    define(&app, "clear", json!({"arms": ["x", "y"]})).await;
    define(
        &app,
        "same",
        json!({"arms": ["u", "v"], "rope": 0.05, "threshold_of_caring": 0.0001}),
    )
    .await;
    app.publish_many(&[
        ("x", 1_000, 9_000),
        ("y", 2_000, 8_000),
        ("u", 500_000, 500_000),
        ("v", 500_000, 500_000),
    ])
    .await;
    let clear = app.get_json("/experiments/clear", 200).await;
    assert_eq!(
        clear["decision"]["decision"], "ship",
        "{}",
        clear["decision"]
    );
    assert_eq!(clear["decision"]["arm"], "y");
    let same = app.get_json("/experiments/same", 200).await;
    assert_eq!(
        same["decision"]["decision"], "no_meaningful_difference",
        "{}",
        same["decision"]
    );
    app.publish_many(&[("x", 0, 0)]).await;
    define(&app, "early", json!({"arms": ["p", "q"]})).await;
    let early = app.get_json("/experiments/early", 200).await;
    assert_eq!(early["decision"]["decision"], "keep_running");
    assert_eq!(early["version"], 0);
}

#[tokio::test]
async fn versions_times_and_windows_answer_from_the_right_slice_of_history() {
    let app = spawn_app().await;
    define(&app, "exp", json!({"arms": ["a", "b"]})).await;
    app.publish("a", 10, 90).await;
    app.publish("b", 20, 80).await;
    app.publish("a", 5, 5).await;
    let rows = model_history::Entity::find()
        .order_by_asc(model_history::Column::AppliedAt)
        .all(&app.db)
        .await
        .unwrap();
    let stamp = |i: usize| {
        rows[i]
            .applied_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    let trials = |body: &Value| -> Vec<u64> {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["trials"].as_u64().unwrap())
            .collect()
    };
    let now = app.get_json("/experiments/exp", 200).await;
    assert_eq!(
        (now["version"].clone(), trials(&now)),
        (json!(3), vec![110, 100])
    );
    let v2 = app.get_json("/experiments/exp?version=2", 200).await;
    assert_eq!(trials(&v2), vec![100, 100]);
    let v0 = app.get_json("/experiments/exp?version=0", 200).await;
    assert_eq!(trials(&v0), vec![0, 0]);
    let at = app
        .get_json(&format!("/experiments/exp?at={}", stamp(0)), 200)
        .await;
    assert_eq!(
        (at["version"].clone(), trials(&at)),
        (json!(1), vec![100, 0])
    );
    // The window after the first commit: b's 100 and a's last 10.
    let window = app
        .get_json(&format!("/experiments/exp?since={}", stamp(0)), 200)
        .await;
    assert_eq!(trials(&window), vec![10, 100]);
    assert_eq!(window["window"]["from_version"], 1);
    let a = Posterior::new(&Prior::Uniform, Counts::new(5, 5)).unwrap();
    let b = Posterior::new(&Prior::Uniform, Counts::new(20, 80)).unwrap();
    let options = ExperimentOptions {
        mass: 0.89,
        rope: 0.01,
    };
    let want = experiment(&[a, b], 0, &options).unwrap();
    close(
        &window["results"][0]["prob_best"],
        want.arms[0].prob_best,
        "windowed P(best)",
    );

    app.get_errors(&[
        ("/experiments/exp?version=4", 404, "version_not_found"),
        ("/experiments/nope", 404, "experiment_not_found"),
        ("/experiments/exp?window=never", 422, "invalid_parameter"),
    ])
    .await;
}

#[tokio::test]
async fn history_lists_every_commit_that_touched_an_arm_and_plots_it() {
    let app = spawn_app().await;
    define(&app, "exp", json!({"arms": ["a", "b", "c"]})).await;
    for round in 0..5u64 {
        app.publish_many(&[("a", 10 + round, 90), ("c", 12, 88 + round)])
            .await;
        app.publish("b", 11, 89).await;
    }
    let page = app.get_json("/experiments/exp/history?limit=4", 200).await;
    let points = page["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    assert_eq!(points[0]["version"], 0);
    assert_eq!(page["next_after"], 3);
    let rest = app
        .get_json("/experiments/exp/history?after=3&limit=1000", 200)
        .await;
    let last = rest["points"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["version"], 15);
    assert!(rest.get("next_after").is_none());
    let now = app.get_json("/experiments/exp", 200).await;
    for arm in 0..3 {
        assert_eq!(last["prob_best"][arm], now["results"][arm]["prob_best"]);
    }
    let sum: f64 = last["prob_best"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-9, "{sum}");

    let png = app
        .get("/experiments/exp/history.png?width=640&height=480")
        .await;
    assert_eq!(png.status(), 200);
    let (w, h, _) = decode_png(&png.bytes().await.unwrap());
    assert_eq!((w, h), (640, 480));
    let svg = app.get("/experiments/exp/history.svg").await;
    assert_eq!(svg.status(), 200);
    assert_eq!(svg_size(&svg.text().await.unwrap()), (800, 600));
    app.get_error(
        "/experiments/exp/history.png?width=1",
        422,
        "invalid_parameter",
    )
    .await;
}

#[tokio::test]
async fn the_bandit_weighs_arms_by_their_exact_chance_to_win_after_the_burn_in() {
    let app = spawn_app().await;
    define(
        &app,
        "bandit",
        json!({"arms": ["a", "b", "c"], "bandit": {"min_trials": 50, "floor": 0.05}}),
    )
    .await;
    app.publish_many(&[("a", 5, 45), ("b", 9, 41)]).await;
    let burn_in = app.get_json("/experiments/bandit/weights", 200).await;
    assert_eq!(burn_in["burn_in"], true);
    for arm in 0..3 {
        close(&burn_in["arms"][arm]["weight"], 1.0 / 3.0, "equal weight");
    }
    app.publish("c", 30, 20).await;
    let weights = app.get_json("/experiments/bandit/weights", 200).await;
    assert_eq!(weights["burn_in"], false);
    assert_eq!(weights["version"], 3);
    let counts = [Counts::new(5, 45), Counts::new(9, 41), Counts::new(30, 20)];
    let posteriors: Vec<Posterior<'_>> = counts
        .iter()
        .map(|c| Posterior::new(&Prior::Uniform, *c).unwrap())
        .collect();
    let options = ExperimentOptions {
        mass: 0.89,
        rope: 0.01,
    };
    let figures = experiment(&posteriors, 0, &options).unwrap();
    let prob_best: Vec<f64> = figures.arms.iter().map(|a| a.prob_best).collect();
    let want = bandit_weights(
        &prob_best,
        &[50, 50, 50],
        &BanditOptions {
            min_trials: 50,
            floor: 0.05,
            top_two: false,
        },
    )
    .unwrap();
    for arm in 0..3 {
        close(&weights["arms"][arm]["weight"], want.weights[arm], "weight");
        assert!(want.weights[arm] >= 0.05 - 1e-12);
    }
}

#[tokio::test]
async fn a_unit_keeps_its_arm_and_assignments_follow_the_weights() {
    let app = spawn_app().await;
    define(
        &app,
        "split",
        json!({"arms": ["a", "b"], "planned_weights": [1, 1], "bandit": {"min_trials": 1000000}}),
    )
    .await;
    let assign = |unit: String| {
        let app = &app;
        async move {
            let response = app
                .client
                .post(app.url("/experiments/split/assignments"))
                .json(&json!({ "unit": unit }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = assign("user-42".into()).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["new"], true);
    // Many concurrent repeats: one arm, no new assignment.
    let repeats = futures::future::join_all((0..20).map(|_| assign("user-42".into()))).await;
    for (status, body) in repeats {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["arm"], first["arm"]);
        assert_eq!(body["new"], false);
    }
    // During the burn-in the split is even: 2 000 units land 50 % ± 5 sd.
    let units = futures::future::join_all((0..2000).map(|i| assign(format!("unit-{i}")))).await;
    let on_a = units.iter().filter(|(_, b)| b["arm"] == "a").count();
    assert!((888..=1112).contains(&on_a), "{on_a} of 2000 on a");
    let served = app.get_json("/experiments/split", 200).await;
    let assigned: u64 = served["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["assignments"].as_u64().unwrap())
        .sum();
    assert_eq!(assigned, 2001);
    assert_eq!(served["assignment_srm"]["flagged"], false);

    for bad in [
        json!({"unit": ""}),
        json!({"unit": "a\nb"}),
        json!({"unit": "x".repeat(256)}),
        json!({"who": "x"}),
    ] {
        let response = app
            .client
            .post(app.url("/experiments/split/assignments"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{bad}");
    }
    let response = app
        .client
        .post(app.url("/experiments/none/assignments"))
        .json(&json!({"unit": "u"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn invalid_experiments_are_refused_with_the_reason_and_a_key_guards_them() {
    let app = spawn_app_with(|s| {
        s.auth.required = true;
        s.auth.bootstrap_admin_key = Some(crate::keys::BOOTSTRAP.to_owned().into());
    })
    .await;
    let put = |body: Value, token: Option<&'static str>| {
        let app = &app;
        async move {
            let mut request = app.client.put(app.url("/experiments/exp")).json(&body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, _) = put(json!({"arms": ["a", "b"]}), None).await;
    assert_eq!(status, 401);
    let many: Vec<String> = (0..21).map(|i| format!("arm{i}")).collect();
    for (body, says) in [
        (json!({"arms": ["a"]}), "between 2 and 20"),
        (json!({"arms": many}), "between 2 and 20"),
        (json!({"arms": ["a", "a"]}), "twice"),
        (json!({"arms": ["a", "B b"]}), "arm"),
        (json!({"arms": ["a", "b"], "control": "c"}), "control"),
        (
            json!({"arms": ["a", "b"], "threshold_of_caring": 0}),
            "threshold_of_caring",
        ),
        (json!({"arms": ["a", "b"], "rope": 1}), "rope"),
        (
            json!({"arms": ["a", "b"], "planned_weights": [1]}),
            "planned_weights",
        ),
        (
            json!({"arms": ["a", "b"], "planned_weights": [1, -1]}),
            "positive",
        ),
        (
            json!({"arms": ["a", "b"], "bandit": {"floor": 0.6}}),
            "floor",
        ),
        (json!({"arms": ["a", "b"], "colour": "red"}), "colour"),
    ] {
        let (status, error) = put(body.clone(), Some(crate::keys::BOOTSTRAP)).await;
        assert_eq!(status, 422, "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let (status, created) = put(json!({"arms": ["a", "b"]}), Some(crate::keys::BOOTSTRAP)).await;
    assert_eq!(status, 201, "{created}");
    let (status, _) = put(
        json!({"arms": ["a", "b", "c"]}),
        Some(crate::keys::BOOTSTRAP),
    )
    .await;
    assert_eq!(status, 200);
    // Its arms are models like any other.
    let arm = app
        .client
        .get(app.url("/models/c"))
        .bearer_auth(crate::keys::BOOTSTRAP)
        .send()
        .await
        .unwrap();
    assert_eq!(arm.status(), 200);
}

#[tokio::test]
async fn deleting_an_experiment_keeps_its_arms_and_only_then_may_they_be_deleted() {
    let app = spawn_app().await;
    let created = app
        .put_json(
            "/experiments/checkout",
            &json!({"arms": ["arm-a", "arm-b"]}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let delete = |path: &str| app.client.delete(app.url(path)).send();

    // An arm of an experiment cannot go: the experiment would lose it.
    let refused = delete("/models/arm-a").await.unwrap();
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_in_experiment", "{body}");
    app.get_json("/models/arm-a", 200).await;

    assert_eq!(delete("/experiments/checkout").await.unwrap().status(), 204);
    app.get_error("/experiments/checkout", 404, "experiment_not_found")
        .await;
    let again = delete("/experiments/checkout").await.unwrap();
    assert_eq!(again.status(), 404);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "experiment_not_found", "{body}");

    // Its arms stay, as models, and may be deleted now.
    app.get_json("/models/arm-b", 200).await;
    assert_eq!(delete("/models/arm-a").await.unwrap().status(), 204);
    app.get_errors(&[
        ("/models/arm-a", 404, "model_not_found"),
        ("/models/arm-a/history", 404, "model_not_found"),
    ])
    .await;
    let again = delete("/models/arm-a").await.unwrap();
    assert_eq!(again.status(), 404);
    app.get_json("/models/arm-b", 200).await;
}
