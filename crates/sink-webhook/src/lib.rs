//! The `webhook` sink: each batch of events POSTed to a URL. `format = "json"` (the default)
//! posts `{"events": [EVENT, …]}`; `"slack"` and `"teams"` post those services' incoming-webhook
//! payload, a readable line per event. Every POST has an `Idempotency-Key` (the same for the
//! same batch on every attempt), every event its `id`. The URL is a credential (Slack's and
//! Teams' are): it is a secret, never shown; a redirect to another origin is never followed.

use std::sync::Arc;

use kri_core::config::ConfigError;
use kri_core::sink::{Sink, SinkError, SinkRegistration, SinkSettings};
use kri_core::{HttpClient, HttpOptions, NoAuth, Request, Secret};
use serde::Deserialize;
use serde_json::{Value, json};

kri_core::inventory::submit! {
    SinkRegistration {
        kind: "webhook",
        description: "events POSTed as JSON, or as Slack or Teams messages",
        build,
        default_events: None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookConfig {
    /// The URL (a secret: Slack's and Teams' URLs are credentials).
    url: Option<Secret>,
    /// …or a file holding it.
    url_file: Option<std::path::PathBuf>,
    #[serde(default = "default_format")]
    format: String,
}

fn default_format() -> String {
    "json".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Slack,
    Teams,
}

struct Webhook {
    http: HttpClient,
    format: Format,
}

fn build(settings: &SinkSettings) -> Result<Box<dyn Sink>, ConfigError> {
    let cfg: WebhookConfig = settings.parse()?;
    let url = kri_core::secret::from_value_or_file(
        cfg.url,
        cfg.url_file.as_deref(),
        &settings.key("url"),
        &settings.key("url_file"),
    )?
    .ok_or_else(|| {
        ConfigError::invalid(
            settings.key("url"),
            "missing: the URL to POST the events to (or url_file)",
        )
    })?;
    let format = match cfg.format.trim() {
        "json" => Format::Json,
        "slack" => Format::Slack,
        "teams" => Format::Teams,
        other => {
            return Err(ConfigError::invalid(
                settings.key("format"),
                format!("`{other}` is not json, slack or teams"),
            ));
        }
    };
    let opts = HttpOptions {
        timeout: settings.timeout,
        // The delivery retries, with back-off, until max_age: no retry storm underneath.
        retries: 0,
        ..HttpOptions::default()
    };
    // The URL's text never shows: errors name the host only.
    let http = HttpClient::new(url.expose(), Arc::new(NoAuth), opts)
        .map_err(|_| ConfigError::invalid(settings.key("url"), "not an http:// or https:// URL with a host"))?;
    Ok(Box::new(Webhook { http, format }))
}

/// The same key for the same batch, whatever the attempt: FNV-1a over the events' ids.
fn idempotency_key(events: &[Value]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in events.iter().filter_map(|e| e["id"].as_str()) {
        for b in id.bytes().chain(std::iter::once(b',')) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("kri-{h:016x}-{}", events.len())
}

/// One line for people: `[acme] pp_vap_count amber → red: 31 (amber 10, red 25) owner: …`.
fn line(e: &Value) -> String {
    let k = &e["kri"];
    let band = |v: &Value| v.as_str().unwrap_or("none").to_owned();
    let tenant = e["tenant"].as_str().unwrap_or_default();
    match e["type"].as_str().unwrap_or_default() {
        "kri.band_changed" => {
            let mut text = format!(
                "[{tenant}] {} ({}) {} → {}: {}",
                k["title"].as_str().unwrap_or_default(),
                k["slug"].as_str().unwrap_or_default(),
                band(&k["from"]),
                band(&k["to"]),
                k["value"]
            );
            for (what, v) in [("owner", &k["owner"]), ("action", &k["action"])] {
                if let Some(v) = v.as_str() {
                    text.push_str(&format!("; {what}: {v}"));
                }
            }
            text
        }
        kind => format!(
            "[{tenant}] {kind}: {}",
            k["slug"]
                .as_str()
                .or(e["connector"]["module"].as_str())
                .unwrap_or_default()
        ),
    }
}

fn body(format: Format, events: &[Value]) -> Value {
    match format {
        Format::Json => json!({ "events": events }),
        Format::Slack => json!({ "text": events.iter().map(line).collect::<Vec<_>>().join("\n") }),
        Format::Teams => json!({
            "@type": "MessageCard", "@context": "http://schema.org/extensions", "summary": "kri",
            "text": events.iter().map(line).collect::<Vec<_>>().join("<br>"),
        }),
    }
}

#[async_trait::async_trait]
impl Sink for Webhook {
    async fn deliver(&self, events: &[Value]) -> Result<(), SinkError> {
        let request = Request::post("")
            .header("Idempotency-Key", &idempotency_key(events))
            .json(body(self.format, events));
        let answer = self.http.stream(request).await.map_err(SinkError::from_http)?;
        drop(answer);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kri_core::HttpError;

    #[test]
    fn the_same_batch_has_the_same_key_and_people_get_a_line_each() {
        let a = json!({"id": "1", "type": "kri.band_changed", "tenant": "acme",
                       "kri": {"slug": "pp_vap_count", "title": "VAPs", "from": "amber", "to": "red", "value": 31,
                               "owner": "SOC", "action": null}});
        let b = json!({"id": "2", "type": "kri.failed", "tenant": "acme", "kri": {"slug": "pp_x"}});
        assert_eq!(
            idempotency_key(&[a.clone(), b.clone()]),
            idempotency_key(&[a.clone(), b.clone()])
        );
        assert_ne!(
            idempotency_key(std::slice::from_ref(&a)),
            idempotency_key(&[a.clone(), b.clone()])
        );
        assert_eq!(line(&a), "[acme] VAPs (pp_vap_count) amber → red: 31; owner: SOC");
        assert_eq!(line(&b), "[acme] kri.failed: pp_x");
        assert_eq!(body(Format::Json, std::slice::from_ref(&a))["events"][0]["id"], "1");
        assert!(body(Format::Slack, &[a, b])["text"].as_str().unwrap().contains('\n'));
    }

    #[test]
    fn a_refusal_is_permanent_a_throttle_or_an_outage_is_not() {
        let e = |status: u16| HttpError::Status {
            endpoint: "POST /".into(),
            status,
            excerpt: String::new(),
        };
        let bad = HttpError::BadRequest {
            endpoint: "POST /".into(),
            excerpt: String::new(),
        };
        assert!(SinkError::from_http(bad).permanent);
        assert!(!SinkError::from_http(e(503)).permanent && !SinkError::from_http(e(408)).permanent);
        let throttled = HttpError::Throttled {
            endpoint: "POST /".into(),
            detail: String::new(),
        };
        assert!(!SinkError::from_http(throttled).permanent);
    }
}
