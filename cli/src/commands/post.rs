//! `bayes post <model> <outcomes...>`: the outcomes as text to the producer's
//! `POST /observations?model=`, which parses them with the domain's wire
//! parser (`w l w`, `WLWWWLWLW`, `1 0`, `success failure`).

use reqwest::Method;
use serde::Deserialize;

use super::{print, CommandError};
use crate::client::Services;

/// What the producer answers once the broker stored the records.
#[derive(Debug, Deserialize)]
struct Accepted {
    accepted: u64,
    partition: i32,
    offset: i64,
}

pub async fn post(
    services: &Services,
    model: &str,
    outcomes: &[String],
) -> Result<(), CommandError> {
    let producer = &services.producer;
    let request = producer
        .request(Method::POST, &["observations"])
        .query(&[("model", model)])
        .header(reqwest::header::CONTENT_TYPE, "text/plain")
        .body(outcomes.join(" "));
    let accepted: Accepted = producer.json(request).await?;
    let records = if accepted.accepted == 1 {
        "record"
    } else {
        "records"
    };
    print(&format!(
        "accepted {} {records} for {model} (partition {}, offset {})\n",
        accepted.accepted, accepted.partition, accepted.offset
    ))
}
