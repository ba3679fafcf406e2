//! The `splunk_hec` sink: each batch to Splunk's HTTP Event Collector,
//! `POST /services/collector/event`, one HEC event object per kri event, back to back (HEC's
//! batch format), with `Authorization: Splunk TOKEN`, the event's time, `index` and
//! `sourcetype`. The token is a secret, sent to the collector's origin only.

use std::sync::Arc;

use kri_core::auth::{Auth, Outgoing};
use kri_core::budget::Budget;
use kri_core::config::ConfigError;
use kri_core::sink::{Sink, SinkError, SinkRegistration, SinkSettings};
use kri_core::{HttpClient, HttpError, HttpOptions, Request, Secret};
use serde::Deserialize;
use serde_json::{Value, json};

kri_core::inventory::submit! {
    SinkRegistration {
        kind: "splunk_hec",
        description: "events batched to Splunk's HTTP Event Collector",
        build,
        default_events: None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HecConfig {
    /// The collector, e.g. `https://splunk.example:8088`.
    url: Option<String>,
    token: Option<Secret>,
    token_file: Option<std::path::PathBuf>,
    index: Option<String>,
    #[serde(default = "default_sourcetype")]
    sourcetype: String,
}

fn default_sourcetype() -> String {
    "kri:event".into()
}

/// `Authorization: Splunk TOKEN`.
#[derive(Debug)]
struct HecToken(Secret);

#[async_trait::async_trait]
impl Auth for HecToken {
    async fn apply(&self, request: &mut Outgoing<'_>, _: Option<&Budget>) -> Result<(), HttpError> {
        request.set_header("authorization", &format!("Splunk {}", self.0.expose()))
    }
    fn unauthorized_hint(&self) -> String {
        "check the HEC token (token / token_file) and that it is enabled in Splunk".into()
    }
}

struct Hec {
    http: HttpClient,
    index: Option<String>,
    sourcetype: String,
}

const PATH: &str = "/services/collector/event";

fn build(settings: &SinkSettings) -> Result<Box<dyn Sink>, ConfigError> {
    let cfg: HecConfig = settings.parse()?;
    let url = cfg.url.ok_or_else(|| {
        ConfigError::invalid(
            settings.key("url"),
            "missing: the collector, e.g. \"https://splunk.example:8088\"",
        )
    })?;
    let token = kri_core::secret::from_value_or_file(
        cfg.token,
        cfg.token_file.as_deref(),
        &settings.key("token"),
        &settings.key("token_file"),
    )?
    .ok_or_else(|| ConfigError::missing(settings.key("token"), "missing: the HEC token (better: token_file)"))?;
    let opts = HttpOptions {
        timeout: settings.timeout,
        retries: 0,
        ..HttpOptions::default()
    };
    let http = HttpClient::new(url.trim_end_matches(PATH), Arc::new(HecToken(token)), opts)
        .map_err(|m| ConfigError::invalid(settings.key("url"), m))?;
    Ok(Box::new(Hec {
        http,
        index: cfg.index,
        sourcetype: cfg.sourcetype,
    }))
}

/// HEC's batch: one `{"time", "event", "sourcetype", "index"}` object per event, back to back.
fn batch(events: &[Value], index: Option<&str>, sourcetype: &str) -> String {
    let mut out = String::new();
    for e in events {
        let time = e["time"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp() as f64);
        let mut h = json!({"time": time, "event": e, "sourcetype": sourcetype, "source": "kri"});
        if let Some(i) = index {
            h["index"] = Value::from(i);
        }
        out.push_str(&h.to_string());
        out.push('\n');
    }
    out
}

#[async_trait::async_trait]
impl Sink for Hec {
    async fn deliver(&self, events: &[Value]) -> Result<(), SinkError> {
        let body = batch(events, self.index.as_deref(), &self.sourcetype);
        let request = Request::post(PATH).text(body, "application/json");
        self.http.stream(request).await.map(drop).map_err(SinkError::from_http)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_one_hec_object_per_event_with_its_time() {
        let e = json!({"id": "1", "type": "kri.band_changed", "time": "2026-11-23T10:20:00Z"});
        let text = batch(&[e.clone(), e], Some("security"), "kri:event");
        let objects: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["time"], 1_795_429_200.0);
        assert_eq!(
            (objects[0]["index"].as_str(), objects[0]["sourcetype"].as_str()),
            (Some("security"), Some("kri:event"))
        );
        assert_eq!(objects[0]["event"]["id"], "1");
    }
}
