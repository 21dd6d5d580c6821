//! A CSV upload through the whole system: `POST /uploads` on the producer,
//! the consumer applying its records, the upload's status following them to
//! `applied`, and the model service counting every row exactly once.

use serde_json::Value;
use system_tests::Stack;
use test_support::eventually;

/// Rows per model; the models' rows are interleaved.
const ROWS_PER_MODEL: u64 = 1_000;
const MODELS: [&str; 3] = ["alpha", "beta", "gamma"];

/// Row `i` of a model: a run `WLW` every tenth row (2 successes, 1
/// failure), else `w` for even and `l` for odd rows.
fn outcome(i: u64) -> &'static str {
    match (i % 10, i % 2) {
        (0, _) => "WLW",
        (_, 0) => "w",
        _ => "l",
    }
}

fn csv() -> (String, Vec<(&'static str, u64, u64)>) {
    let mut csv = String::from("model,outcome\n");
    let mut counts: Vec<(&'static str, u64, u64)> = MODELS.iter().map(|m| (*m, 0, 0)).collect();
    for i in 0..ROWS_PER_MODEL {
        for (model, successes, failures) in &mut counts {
            let cell = outcome(i);
            csv.push_str(&format!("{model},{cell}\n"));
            for c in cell.chars() {
                if c.eq_ignore_ascii_case(&'w') {
                    *successes += 1;
                } else {
                    *failures += 1;
                }
            }
        }
    }
    (csv, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_is_followed_to_applied_and_counts_every_row_once() {
    let _machine = system_tests::share_the_machine().await;
    let stack = Stack::start().await;
    let (csv, counts) = csv();
    let post = || async {
        stack
            .http
            .post(format!("{}/uploads?filename=tosses.csv", stack.producer))
            .header("content-type", "text/csv")
            .body(csv.clone())
            .send()
            .await
            .unwrap()
    };
    let response = post().await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(body["rows"], ROWS_PER_MODEL * MODELS.len() as u64);

    // Statuses only move forward, and end at `applied`.
    let order = ["producing", "produced", "applied"];
    let mut seen = 0;
    let upload = eventually(&format!("upload {id} is applied"), async || {
        let body: Value = stack
            .http
            .get(format!("{}/uploads/{id}", stack.producer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status = body["status"].as_str().unwrap_or_default();
        let at = order
            .iter()
            .position(|s| *s == status)
            .unwrap_or_else(|| panic!("unexpected status: {body}"));
        assert!(at >= seen, "went back from {} to {status}", order[seen]);
        seen = at;
        (status == "applied").then_some(body)
    })
    .await;
    assert_eq!(upload["rows_produced"], upload["rows"]);
    assert!(upload["applied_at"].is_string(), "{upload}");

    for (model, successes, failures) in counts {
        let state = stack.model_with_trials(model, successes + failures).await;
        assert_eq!(
            (state["successes"].as_u64(), state["failures"].as_u64()),
            (Some(successes), Some(failures)),
            "{model}: {state}"
        );
    }

    // The same file again is refused, naming the first upload.
    let again = post().await;
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "duplicate_upload");
    assert!(body["error"]["message"].as_str().unwrap().contains(&id));

    stack.stop().await;
}
