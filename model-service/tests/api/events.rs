//! `/events`: server-sent events fed by the consumer's Postgres NOTIFY.

use std::time::Duration;

use crate::helpers::{spawn_app, TestApp};

/// An open `/events` stream and the text read from it so far.
pub struct EventStream {
    response: reqwest::Response,
    seen: String,
}

impl EventStream {
    pub async fn open(app: &TestApp) -> Self {
        let response = app.get("/events").await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut stream = EventStream {
            response,
            seen: String::new(),
        };
        stream
            .read_until("event: ready", Duration::from_secs(10))
            .await;
        stream
    }

    /// Reads until the text holds `needle`, failing after `deadline`.
    pub async fn read_until(&mut self, needle: &str, deadline: Duration) -> String {
        match self.try_read_until(needle, deadline).await {
            Some(event) => event,
            None => panic!("no {needle:?} within {deadline:?}; seen: {}", self.seen),
        }
    }

    /// Reads until the text holds `needle` (the text from it on), or
    /// `None` after `deadline`.
    pub async fn try_read_until(&mut self, needle: &str, deadline: Duration) -> Option<String> {
        tokio::time::timeout(deadline, async {
            while !self.seen.contains(needle) {
                match self.response.chunk().await.expect("stream") {
                    Some(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                    None => panic!("the stream ended; seen: {}", self.seen),
                }
            }
        })
        .await
        .ok()?;
        let at = self.seen.find(needle).unwrap_or(0);
        let event = self.seen[at..].to_owned();
        self.seen.clear();
        Some(event)
    }
}

#[tokio::test]
async fn an_event_arrives_after_the_consumer_commits() {
    let app = spawn_app().await;
    let mut events = EventStream::open(&app).await;

    app.publish_many(&[("globe", 6, 3), ("coin", 1, 0)]).await;
    let event = events
        .read_until("event: update", Duration::from_secs(10))
        .await;
    let line = events_data(&event, &mut events).await;
    let update: serde_json::Value = serde_json::from_str(&line).unwrap();
    let mut models: Vec<&str> = update["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    models.sort_unstable();
    assert_eq!(models, ["coin", "globe"]);
    assert_eq!(update["all"], false);
}

#[tokio::test]
async fn an_event_arrives_after_a_model_is_configured() {
    let app = spawn_app().await;
    let mut events = EventStream::open(&app).await;
    let response = app
        .put_json("/models/coin", &serde_json::json!({"grid_size": 10}))
        .await;
    assert_eq!(response.status().as_u16(), 201);
    let event = events
        .read_until("event: update", Duration::from_secs(10))
        .await;
    let line = events_data(&event, &mut events).await;
    assert!(line.contains("\"coin\""), "{line}");
}

/// The `data:` line of an event whose start is in `event` (reading more if
/// the line has not fully arrived yet).
pub async fn events_data(event: &str, stream: &mut EventStream) -> String {
    let mut text = event.to_owned();
    loop {
        if let Some(at) = text.find("data: ") {
            let rest = &text[at + 6..];
            if let Some(end) = rest.find('\n') {
                return rest[..end].to_owned();
            }
        }
        let more = tokio::time::timeout(Duration::from_secs(10), stream.response.chunk())
            .await
            .expect("the rest of the event")
            .expect("stream")
            .expect("more data");
        text.push_str(&String::from_utf8_lossy(&more));
    }
}

#[tokio::test]
async fn shutdown_ends_open_event_streams() {
    let app = spawn_app().await;
    let mut events = EventStream::open(&app).await;
    let stopping = app.stop(Duration::from_secs(10));
    let (stopped, ended) = tokio::join!(stopping, async {
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(_)) = events.response.chunk().await {}
        })
        .await
    });
    stopped.expect("the server stops gracefully with a stream open");
    assert!(ended.is_ok(), "the event stream ended");
}
