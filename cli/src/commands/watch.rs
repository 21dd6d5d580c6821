//! `bayes watch <model>`: the model's posterior, printed again whenever the
//! model service's event stream (`GET /events`, server-sent events) says the
//! model changed, until Ctrl-C.
//!
//! The stream is opened, and its `ready` event awaited, before the first
//! posterior is read: a commit between the two is then announced rather
//! than missed.

use std::io::IsTerminal;

use reqwest::{Method, Response};
use serde::Deserialize;

use super::posterior::{self, PosteriorView};
use super::{print, CommandError};
use crate::client::{Service, Services};

/// What an `update` event says.
#[derive(Debug, Deserialize)]
struct ModelEvent {
    models: Vec<String>,
    all: bool,
}

pub async fn watch(services: &Services, model: &str) -> Result<(), CommandError> {
    let service = &services.model;
    let response = service
        .send(
            service
                .request(Method::GET, &["events"])
                .header(reqwest::header::ACCEPT, "text/event-stream"),
        )
        .await?;
    let mut events = EventStream::new(response);
    let redraw = std::io::stdout().is_terminal();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut ready = false;
    loop {
        let event = tokio::select! {
            // Ctrl-C is how a watch ends: not an error.
            _ = &mut ctrl_c => return Ok(()),
            event = events.next(service) => event?,
        };
        let Some(event) = event else {
            return Err(CommandError::EventStreamEnded);
        };
        let changed = match event.name.as_str() {
            "ready" if !ready => {
                ready = true;
                true
            }
            "update" => serde_json::from_str::<ModelEvent>(&event.data)
                .map_err(|e| service.unexpected(format!("an update event: {e}")))
                .map(|e| e.all || e.models.iter().any(|m| m == model))?,
            _ => false,
        };
        if changed {
            show(service, model, redraw).await?;
        }
    }
}

/// Prints the posterior: over the previous one on a terminal, after it
/// otherwise (a pipe keeps every version).
async fn show(service: &Service, model: &str, redraw: bool) -> Result<(), CommandError> {
    let value = posterior::fetch(service, model, None, None).await?;
    let view: PosteriorView = serde_json::from_value(value).map_err(|e| service.unexpected(e))?;
    let text = posterior::render(model, &view);
    if redraw {
        // Clear the screen and go home, then the summary and a hint.
        print(&format!(
            "\x1b[2J\x1b[H{text}\nwatching {model}: Ctrl-C stops\n"
        ))
    } else {
        print(&format!("{text}\n"))
    }
}

/// One server-sent event.
#[derive(Debug)]
struct Event {
    name: String,
    data: String,
}

/// Server-sent events read from a streamed response, line by line.
#[derive(Debug)]
struct EventStream {
    response: Response,
    buffer: Vec<u8>,
    name: String,
    data: Vec<String>,
}

impl EventStream {
    fn new(response: Response) -> Self {
        Self {
            response,
            buffer: Vec::new(),
            name: String::new(),
            data: Vec::new(),
        }
    }

    /// The next event, or `None` when the stream ended.
    async fn next(&mut self, service: &Service) -> Result<Option<Event>, CommandError> {
        loop {
            while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if let Some(event) = self.line(line) {
                    return Ok(Some(event));
                }
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => return Ok(None),
                Err(error) => return Err(service.unreachable(&error).into()),
            }
        }
    }

    /// Takes one line; a blank line ends an event.
    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            if self.name.is_empty() && self.data.is_empty() {
                return None;
            }
            let name = std::mem::take(&mut self.name);
            return Some(Event {
                name: if name.is_empty() {
                    "message".into()
                } else {
                    name
                },
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        // A comment (the keep-alive).
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = value.to_owned(),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}
