//! `POST /uploads`, `GET /uploads[/{id}]`: valid files in every form land
//! on the topic as one record a row with the id `<upload>:<line>`; invalid
//! files answer with their first bad lines and produce nothing; the same
//! file twice is refused unless forced; the database down closes uploads
//! and nothing else.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::Value;
use test_support::eventually;

use crate::helpers::{spawn_app, spawn_app_with_database, Answer, TestApp};

impl TestApp {
    pub(crate) async fn upload(&self, query: &str, content_type: &str, body: Vec<u8>) -> Answer {
        self.post(&format!("/uploads{query}"), content_type, body)
            .await
    }

    pub(crate) async fn upload_csv(&self, query: &str, csv: &str) -> Answer {
        self.upload(query, "text/csv", csv.as_bytes().to_vec())
            .await
    }

    /// Polls the upload until its status is `status`; a `failed` upload
    /// fails the test unless that is the status waited for.
    pub(crate) async fn upload_with_status(&self, id: &str, status: &str) -> Value {
        eventually(&format!("upload {id} is {status}"), async || {
            let answer = self.get(&format!("/uploads/{id}")).await;
            assert_eq!(answer.status, 200, "{}", answer.text);
            let body = answer.json();
            if body["status"] != "failed" || status == "failed" {
                (body["status"] == status).then_some(body)
            } else {
                panic!("the upload failed: {body}")
            }
        })
        .await
    }

    /// The records' values on the topic, as JSON.
    async fn values(&self) -> Vec<Value> {
        self.records()
            .await
            .iter()
            .map(|r| serde_json::from_str(&r.value).expect("records are JSON"))
            .collect()
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("compressing in memory");
    encoder.finish().expect("compressing in memory")
}

fn accepted_id(answer: &Answer) -> String {
    assert_eq!(answer.status, 202, "{}", answer.text);
    let body = answer.json();
    let id = body["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        answer.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/uploads/{id}").as_str())
    );
    assert_eq!(body["status"], "producing");
    id
}

#[tokio::test]
async fn a_csv_with_quotes_crlf_and_a_bom_becomes_one_record_a_row_with_line_ids() {
    let app = spawn_app_with_database(|_| {}).await;
    let csv = "\u{feff}model,outcome,observed_at\r\nglobe,w,2024-05-01T10:00:00Z\r\n\"globe\",\"WLW\",\r\ncoin,\"l\",\r\n";

    let answer = app.upload_csv("?filename=tosses.csv", csv).await;
    let id = accepted_id(&answer);
    let body = answer.json();
    assert_eq!(body["rows"], 3);
    assert_eq!(body["trials"], 5);
    assert_eq!(body["models"], serde_json::json!(["globe", "coin"]));
    assert_eq!(body["filename"], "tosses.csv");
    assert_eq!(body["bytes"], csv.len());

    let done = app.upload_with_status(&id, "produced").await;
    assert_eq!(done["rows_produced"], 3);
    assert_eq!(done["offsets"][0]["records"], 3);
    let values = app.values().await;
    assert_eq!(
        values,
        [
            serde_json::json!({"model": "globe", "successes": 1, "trials": 1, "id": format!("{id}:2"), "observed_at": "2024-05-01T10:00:00Z"}),
            serde_json::json!({"model": "globe", "successes": 2, "trials": 3, "id": format!("{id}:3")}),
            serde_json::json!({"model": "coin", "successes": 0, "trials": 1, "id": format!("{id}:4")}),
        ]
    );
}

#[tokio::test]
async fn a_gzipped_counts_file_for_the_query_model_keeps_its_own_ids() {
    let app = spawn_app_with_database(|_| {}).await;
    let csv = "successes,trials,id\n6,9,survey-1\n0,4,\n";

    let answer = app
        .upload("?model=survey", "text/csv", gzip(csv.as_bytes()))
        .await;
    let id = accepted_id(&answer);
    assert_eq!(
        answer.json()["bytes"],
        csv.len(),
        "decoded bytes are counted"
    );
    app.upload_with_status(&id, "produced").await;
    let values = app.values().await;
    assert_eq!(
        values,
        [
            serde_json::json!({"model": "survey", "successes": 6, "trials": 9, "id": "survey-1"}),
            serde_json::json!({"model": "survey", "successes": 0, "trials": 4, "id": format!("{id}:3")}),
        ]
    );
}

#[tokio::test]
async fn a_multipart_form_uploads_its_file_part_under_the_part_s_file_name() {
    let app = spawn_app_with_database(|_| {}).await;
    let boundary = "XyZbOuNdArY";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"lab.csv\"\r\nContent-Type: text/csv\r\n\r\n\
         model,outcome\nlab,1\nlab,0\n\r\n--{boundary}--\r\n"
    );

    let answer = app
        .upload(
            "",
            &format!("multipart/form-data; boundary={boundary}"),
            body.into_bytes(),
        )
        .await;
    let id = accepted_id(&answer);
    assert_eq!(answer.json()["filename"], "lab.csv");
    assert_eq!(answer.json()["rows"], 2);
    app.upload_with_status(&id, "produced").await;
    assert_eq!(app.values().await.len(), 2);
}

#[tokio::test]
async fn a_file_with_bad_rows_lists_them_by_line_and_column_and_produces_nothing() {
    let app = spawn_app_with_database(|settings| settings.uploads.max_errors = 2).await;
    let csv = "model,outcome\nglobe,w\nglobe,banana\nglobe,w,extra\nBad Model,w\nglobe,l\n";

    let answer = app.upload_csv("", csv).await;
    answer.assert_error(422, "invalid_csv", "3 invalid line(s)");
    let body = answer.json();
    assert_eq!(body["error"]["count"], 3);
    let errors = body["error"]["errors"].as_array().expect("a list");
    assert_eq!(errors.len(), 2, "at most max_errors are listed: {body}");
    assert_eq!(errors[0]["line"], 3);
    assert_eq!(errors[0]["column"], "outcome");
    assert_eq!(errors[1]["line"], 4);
    assert!(errors[1]["message"]
        .as_str()
        .is_some_and(|m| m.contains("3 fields where the header has 2")));
    app.assert_nothing_was_produced().await;
    let list = app.get("/uploads").await;
    assert_eq!(
        list.json()["uploads"],
        serde_json::json!([]),
        "nothing recorded"
    );
}

#[tokio::test]
async fn bad_headers_and_empty_files_are_refused_with_a_reason() {
    let app = spawn_app_with_database(|_| {}).await;
    let cases = [
        ("model,outcom\nglobe,w\n", "unknown column"),
        ("model,successes\nglobe,1\n", "either an `outcome` column"),
        ("outcome\nw\n", "no `model` column"),
        ("", "empty file"),
        ("model,outcome\n", "no rows"),
    ];
    for (csv, fragment) in cases {
        let answer = app.upload_csv("", csv).await;
        assert_eq!(answer.status, 422, "{csv:?}: {}", answer.text);
        let body = answer.json();
        assert_eq!(body["error"]["code"], "invalid_csv");
        let message = body["error"]["errors"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(fragment), "{csv:?}: {body}");
    }
    app.assert_nothing_was_produced().await;
}

#[tokio::test]
async fn a_file_over_the_limit_is_413_whether_sent_large_or_decoded_large() {
    let app = spawn_app_with_database(|settings| settings.uploads.max_bytes = 10_000).await;
    let mut csv = String::from("model,outcome\n");
    while csv.len() <= 20_000 {
        csv.push_str("globe,w\n");
    }
    let answer = app.upload_csv("", &csv).await;
    answer.assert_error(413, "payload_too_large", "10000 bytes");

    // A zip bomb in small: a few hundred bytes that decode past the limit.
    let bomb = gzip(csv.as_bytes());
    assert!(bomb.len() < 10_000);
    let answer = app.upload("", "text/csv", bomb).await;
    answer.assert_error(413, "payload_too_large", "10000 bytes");
    app.assert_nothing_was_produced().await;
}

#[tokio::test]
async fn the_same_file_twice_is_409_with_the_first_upload_unless_forced() {
    let app = spawn_app_with_database(|_| {}).await;
    let csv = "model,outcome\nglobe,w\nglobe,l\n";
    let first = accepted_id(&app.upload_csv("", csv).await);
    let first_body = app.upload_with_status(&first, "produced").await;

    // Gzipped, it is still the same file.
    let again = app.upload("", "text/csv", gzip(csv.as_bytes())).await;
    again.assert_error(409, "duplicate_upload", &first);
    let at = first_body["validated_at"].as_str().expect("a time");
    let message = again.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains(&at[..19]), "{message} names {at}");
    assert_eq!(
        again.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/uploads/{first}").as_str())
    );

    let forced = accepted_id(&app.upload_csv("?force=true", csv).await);
    assert_eq!(forced, format!("{first}-1"));
    app.upload_with_status(&forced, "produced").await;
    let ids: Vec<Value> = app.values().await.iter().map(|v| v["id"].clone()).collect();
    assert_eq!(
        ids,
        [
            format!("{first}:2"),
            format!("{first}:3"),
            format!("{forced}:2"),
            format!("{forced}:3")
        ]
    );

    let list = app.get("/uploads").await.json();
    let listed: Vec<&str> = list["uploads"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert_eq!(listed, [forced.as_str(), first.as_str()], "newest first");
}

/// A POST whose body is sent as the test feeds it: the request runs in a
/// task until the sender is dropped (the body ends) or the task is aborted
/// (the client goes away).
type BodySender = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;
type PendingAnswer = tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>;

fn slow_post(app: &TestApp, query: &str) -> (BodySender, PendingAnswer) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let request = app
        .client
        .post(format!("{}/uploads{query}", app.address))
        .header("content-type", "text/csv")
        .body(reqwest::Body::wrap_stream(body));
    (tx, tokio::spawn(request.send()))
}

/// The uploads `GET /uploads` lists as `validating`.
async fn validating(app: &TestApp) -> Vec<Value> {
    let list = app.get("/uploads").await;
    assert_eq!(list.status, 200, "{}", list.text);
    list.json()["uploads"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|u| u["status"] == "validating")
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_upload_is_listed_as_validating_until_its_post_answers_or_its_client_leaves() {
    let app = spawn_app_with_database(|_| {}).await;
    let (tx, post) = slow_post(&app, "?filename=slow.csv");
    let head = b"model,outcome\nglobe,w\n";
    tx.send(Ok(head.to_vec()))
        .await
        .expect("the request reads on");

    // Listed first, with the bytes received so far, while the POST reads on.
    let listed = eventually("the upload is listed as validating", async || {
        let first = validating(&app).await.into_iter().next()?;
        (first["bytes"] == head.len()).then_some(first)
    })
    .await;
    assert_eq!(listed["filename"], "slow.csv");
    assert!(listed.get("sha256").is_none(), "{listed}");
    let id = listed["id"].as_str().expect("an id").to_owned();
    assert!(id.starts_with("validating-"), "{id}");
    let one = app.get(&format!("/uploads/{id}")).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.json()["status"], "validating");

    // The body ends: 202 under the content's id, and the provisional one is gone.
    tx.send(Ok(b"globe,l\n".to_vec()))
        .await
        .expect("the request reads on");
    drop(tx);
    let answer = post.await.expect("the request task").expect("an answer");
    assert_eq!(answer.status(), 202);
    assert!(validating(&app).await.is_empty());
    app.get(&format!("/uploads/{id}"))
        .await
        .assert_error(404, "upload_not_found", &id);

    // A client that goes away half-way takes its validating upload along.
    let (tx, post) = slow_post(&app, "");
    tx.send(Ok(head.to_vec()))
        .await
        .expect("the request reads on");
    eventually("the second upload is listed", async || {
        (validating(&app).await.len() == 1).then_some(())
    })
    .await;
    post.abort();
    drop(tx);
    eventually("the abandoned upload is gone", async || {
        validating(&app).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn unknown_uploads_and_bad_parameters_are_4xx_in_the_common_shape() {
    let app = spawn_app_with_database(|_| {}).await;
    app.get("/uploads/nope")
        .await
        .assert_error(404, "upload_not_found", "nope");
    app.get("/uploads?limit=0")
        .await
        .assert_error(422, "invalid_parameter", "limit");
    app.upload("", "application/json", b"{}".to_vec())
        .await
        .assert_error(415, "unsupported_media_type", "text/csv");
    app.upload_csv("?model=Not%20A%20Model", "outcome\nw\n")
        .await
        .assert_error(422, "invalid_observation", "model");
    app.upload("", "multipart/form-data; boundary=b", b"--b--\r\n".to_vec())
        .await
        .assert_error(400, "bad_request", "no file part");
}

#[tokio::test]
async fn without_the_database_uploads_are_503_and_observations_still_flow() {
    // The helpers' settings point the database at a closed port.
    let app = spawn_app().await;
    app.upload_csv("", "model,outcome\nglobe,w\n")
        .await
        .assert_error(503, "database_unavailable", "database");
    app.get("/uploads")
        .await
        .assert_error(503, "database_unavailable", "database");
    let answer = app.post_json(r#"{"model":"globe","outcome":"w"}"#).await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
}
