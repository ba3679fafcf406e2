//! A receiver for kri's HTTP sinks, standing for a SOC's webhook endpoint or a Splunk HTTP Event
//! Collector: it takes a webhook batch (`{"events": […]}`) or an HEC batch (one `{"event": …}`
//! object per line) at any path and counts every event id it accepted, so a test can say "each
//! event exactly once". It can be told to fail (a status, or never answering) and stopped and
//! started again on the same port, as a real receiver goes down and comes back.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use tokio::task::JoinHandle;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200: the events are accepted (and counted).
    Accept,
    /// This status; nothing is accepted.
    Status(u16),
    /// The request is read and never answered.
    Hang,
}

#[derive(Debug)]
struct Inner {
    answer: Answer,
    /// Accepted events by id: how many times each arrived in an accepted request.
    ids: HashMap<String, u32>,
    /// Every request, answered or not.
    requests: usize,
    /// The batches accepted, in order: the ids of each.
    batches: Vec<Vec<String>>,
}

type Shared = Arc<Mutex<Inner>>;

/// The receiver; dropping it stops it.
pub struct Receiver {
    addr: SocketAddr,
    inner: Shared,
    task: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Serve on 127.0.0.1 at a free port, accepting everything.
    pub async fn start() -> io::Result<Receiver> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serve on `addr` (the address of a receiver stopped before: it comes back).
    pub async fn start_on(addr: SocketAddr) -> io::Result<Receiver> {
        let mut r = Receiver {
            addr,
            inner: Arc::new(Mutex::new(Inner {
                answer: Answer::Accept,
                ids: HashMap::new(),
                requests: 0,
                batches: Vec::new(),
            })),
            task: None,
        };
        r.listen().await?;
        Ok(r)
    }

    async fn listen(&mut self) -> io::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        self.addr = listener.local_addr()?;
        let app = Router::new()
            .fallback(receive)
            .layer(axum::extract::DefaultBodyLimit::max(16 << 20))
            .with_state(self.inner.clone());
        self.task = Some(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("receiver stopped: {e}");
            }
        }));
        Ok(())
    }

    /// Stop listening (connections are refused) and keep what was received.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Listen again on the same port, with what was received so far.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop();
        // The aborted task lets go of the socket on its next poll.
        for _ in 0..50 {
            match self.listen().await {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
        self.listen().await
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn answer(&self, answer: Answer) {
        self.lock().answer = answer;
    }

    /// Accepted events by id, with how many times each arrived.
    pub fn ids(&self) -> HashMap<String, u32> {
        self.lock().ids.clone()
    }

    /// Events accepted in all (an event accepted twice counts twice).
    pub fn accepted(&self) -> usize {
        self.lock().ids.values().map(|n| *n as usize).sum()
    }

    /// Requests received, answered or not.
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// The accepted batches' ids, in order.
    pub fn batches(&self) -> Vec<Vec<String>> {
        self.lock().batches.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The event ids of a webhook or an HEC batch.
fn event_ids(body: &[u8]) -> Option<Vec<String>> {
    let id = |e: &Value| e["id"].as_str().map(str::to_owned);
    if let Ok(v) = serde_json::from_slice::<Value>(body)
        && let Some(events) = v["events"].as_array()
    {
        return events.iter().map(id).collect();
    }
    let text = std::str::from_utf8(body).ok()?;
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .map(|h| h.ok().and_then(|h| id(&h["event"])))
        .collect()
}

async fn receive(State(inner): State<Shared>, body: Bytes) -> (StatusCode, &'static str) {
    let answer = {
        let mut i = inner.lock().unwrap_or_else(|p| p.into_inner());
        i.requests += 1;
        i.answer
    };
    match answer {
        Answer::Hang => std::future::pending().await,
        Answer::Status(s) => (
            StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "refused",
        ),
        Answer::Accept => {
            let Some(ids) = event_ids(&body) else {
                return (StatusCode::BAD_REQUEST, "not a batch of events with ids");
            };
            let mut i = inner.lock().unwrap_or_else(|p| p.into_inner());
            for id in &ids {
                *i.ids.entry(id.clone()).or_default() += 1;
            }
            i.batches.push(ids);
            (StatusCode::OK, "{\"text\":\"Success\",\"code\":0}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_and_hec_batches_give_their_ids() {
        assert_eq!(
            event_ids(br#"{"events": [{"id": "a"}, {"id": "b"}]}"#),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            event_ids(b"{\"event\": {\"id\": \"a\"}}\n{\"event\": {\"id\": \"b\"}}\n"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(event_ids(br#"{"events": [{"no": "id"}]}"#), None);
    }
}
