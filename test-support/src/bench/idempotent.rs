//! Sending a POST again, the same body under the same `Idempotency-Key`,
//! until the service accepts it (202): what a careful client does while the
//! service, its broker or its network fails, and what the chaos load does to
//! find out whether the pipeline counts each acknowledged request once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use platform::retry::Backoff;
use reqwest::StatusCode;

/// How many examples of unexpected answers [`Retries`] keeps.
const EXAMPLES_KEPT: usize = 10;

/// One request that may be sent any number of times: the service applies
/// its observations once per key.
#[derive(Debug, Clone)]
pub struct IdempotentPost {
    pub url: String,
    pub content_type: &'static str,
    pub body: String,
    pub key: String,
}

/// Why [`post_until_accepted`] returned without a 202.
#[derive(Debug, thiserror::Error)]
pub enum NotAccepted {
    /// `give_up` said so before an attempt.
    #[error("given up on {key} before it was accepted")]
    GaveUp { key: String },
    /// A 4xx: the service refused the request itself (nothing was written),
    /// so sending it again would get the same answer.
    #[error("{key} refused with {status}: {body}")]
    Refused {
        key: String,
        status: StatusCode,
        body: String,
    },
}

/// What the failed attempts of many [`post_until_accepted`] calls met,
/// counted across the tasks that share it.
#[derive(Debug, Default)]
pub struct Retries {
    /// 503: the service could not get the write acknowledged in time.
    pub status_503: AtomicU64,
    /// No answer within the client's timeout.
    pub timeouts: AtomicU64,
    /// Refused, reset or cut off mid-answer (the service is down or was killed).
    pub connection_errors: AtomicU64,
    /// Answers that are neither 202 nor 503.
    pub unexpected: AtomicU64,
    examples: Mutex<Vec<String>>,
}

impl Retries {
    /// A few of the unexpected answers, as `status for url (key ...): body`.
    pub fn unexpected_examples(&self) -> Vec<String> {
        self.examples
            .lock()
            .map(|examples| examples.clone())
            .unwrap_or_default()
    }

    fn note_unexpected(&self, text: String) {
        self.unexpected.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut examples) = self.examples.lock() {
            if examples.len() < EXAMPLES_KEPT {
                examples.push(text);
            }
        }
    }
}

/// Sends `post` until the service answers 202, waiting 0.1 s after a failed
/// attempt and twice as long after each further one, up to 1 s. A 503, a
/// timeout, a connection error or another 5xx is retried; a 4xx ends it
/// ([`NotAccepted::Refused`]), and so does `give_up` answering true before
/// an attempt. Every failed attempt is counted in `retries`.
pub async fn post_until_accepted(
    client: &reqwest::Client,
    post: &IdempotentPost,
    retries: &Retries,
    give_up: impl Fn() -> bool,
) -> Result<(), NotAccepted> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    loop {
        if give_up() {
            return Err(NotAccepted::GaveUp {
                key: post.key.clone(),
            });
        }
        let sent = client
            .post(&post.url)
            .header(reqwest::header::CONTENT_TYPE, post.content_type)
            .header("idempotency-key", &post.key)
            .body(post.body.clone())
            .send()
            .await;
        // The whole answer is read: a body cut off is a connection error too.
        let answer = match sent {
            Ok(response) => {
                let status = response.status();
                response.text().await.map(|body| (status, body))
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok((StatusCode::ACCEPTED, _)) => return Ok(()),
            Ok((StatusCode::SERVICE_UNAVAILABLE, _)) => {
                retries.status_503.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, body)) => {
                let body: String = body.chars().take(300).collect();
                retries.note_unexpected(format!(
                    "{status} for {} (key {}): {body}",
                    post.url, post.key
                ));
                if status.is_client_error() {
                    return Err(NotAccepted::Refused {
                        key: post.key.clone(),
                        status,
                        body,
                    });
                }
            }
            Err(e) if e.is_timeout() => {
                retries.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                retries.connection_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

#[cfg(test)]
mod tests {
    //! Against a small HTTP server of the test's that answers from a script:
    //! the real producer cannot be told to fail on a given attempt, and this
    //! crate cannot depend on it (it is the producer's dev-dependency).

    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What the scripted server does with one connection.
    #[derive(Debug, Clone, Copy)]
    enum Answer {
        Status(u16),
        /// Closes the connection without answering.
        Hang,
    }

    /// Serves `script` one connection at a time (each answer closes its
    /// connection); returns the URL and the idempotency keys it received.
    async fn scripted_server(script: Vec<Answer>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/observations", listener.local_addr().unwrap());
        let keys = Arc::new(Mutex::new(Vec::new()));
        let seen = keys.clone();
        tokio::spawn(async move {
            for answer in script {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // The request is small: read until the end of its body.
                while !String::from_utf8_lossy(&request).ends_with("{}") {
                    let n = socket.read(&mut buffer).await.unwrap();
                    assert!(n > 0, "the client closed before its body");
                    request.extend_from_slice(&buffer[..n]);
                }
                let text = String::from_utf8_lossy(&request).to_lowercase();
                let key = text
                    .lines()
                    .find_map(|l| l.strip_prefix("idempotency-key: "))
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                seen.lock().unwrap().push(key);
                if let Answer::Status(status) = answer {
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                    );
                    socket.write_all(head.as_bytes()).await.unwrap();
                }
            }
        });
        (url, keys)
    }

    fn post(url: String) -> IdempotentPost {
        IdempotentPost {
            url,
            content_type: "application/json",
            body: "{}".into(),
            key: "k-1".into(),
        }
    }

    #[tokio::test]
    async fn a_503_and_a_cut_connection_are_retried_with_the_same_key_until_the_202() {
        let (url, keys) = scripted_server(vec![
            Answer::Status(503),
            Answer::Hang,
            Answer::Status(500),
            Answer::Status(202),
        ])
        .await;
        let retries = Retries::default();
        let client = reqwest::Client::new();
        post_until_accepted(&client, &post(url), &retries, || false)
            .await
            .unwrap();
        assert_eq!(*keys.lock().unwrap(), vec!["k-1"; 4]);
        assert_eq!(retries.status_503.load(Ordering::Relaxed), 1);
        assert_eq!(retries.connection_errors.load(Ordering::Relaxed), 1);
        assert_eq!(retries.unexpected.load(Ordering::Relaxed), 1);
        assert!(retries.unexpected_examples()[0].starts_with("500 "));
    }

    #[tokio::test]
    async fn a_4xx_ends_the_retries_as_refused() {
        let (url, keys) = scripted_server(vec![Answer::Status(409)]).await;
        let retries = Retries::default();
        let client = reqwest::Client::new();
        let refused = post_until_accepted(&client, &post(url), &retries, || false).await;
        assert!(
            matches!(refused, Err(NotAccepted::Refused { status, .. }) if status == StatusCode::CONFLICT),
            "{refused:?}"
        );
        assert_eq!(keys.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn giving_up_stops_before_the_next_attempt() {
        let (url, keys) = scripted_server(vec![Answer::Status(503); 10]).await;
        let retries = Retries::default();
        let client = reqwest::Client::new();
        let attempts = AtomicU64::new(0);
        let result = post_until_accepted(&client, &post(url), &retries, || {
            attempts.fetch_add(1, Ordering::Relaxed) >= 2
        })
        .await;
        assert!(
            matches!(result, Err(NotAccepted::GaveUp { .. })),
            "{result:?}"
        );
        assert_eq!(keys.lock().unwrap().len(), 2);
        assert_eq!(retries.status_503.load(Ordering::Relaxed), 2);
    }
}
