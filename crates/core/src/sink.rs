//! Sinks: where events go ([`crate::events`]). A sink type is a plugin registered through
//! `inventory`, like a connector: `kri_core::inventory::submit! { SinkRegistration { … } }` in
//! its crate, linked by the binary. `[sinks.NAME] type = "…"` selects it; the framework owns the
//! common keys (which events, tenants, KRIs; how long to keep trying) and the delivery (a
//! cursor per sink in the store, one deliverer at a time, retries, dead letters); a sink only
//! sends a batch.

use std::time::Duration;

use figment::value::Dict;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{ConfigError, parse_keys};

/// One sink type's entry in the registry.
pub struct SinkRegistration {
    /// `[sinks.NAME] type = "…"`.
    pub kind: &'static str,
    pub description: &'static str,
    /// Build the sink from its table (the framework's keys taken out). No network call.
    pub build: fn(&SinkSettings) -> Result<Box<dyn Sink>, ConfigError>,
    /// The events this type gets when its table has no `events`; `None`: [`DEFAULT_EVENTS`].
    /// (Alertmanager, say, also wants `kri.value`, to keep a breach firing and to resolve it.)
    pub default_events: Option<&'static [&'static str]>,
}

inventory::collect!(SinkRegistration);

/// Every linked sink type, ordered by name.
pub fn sink_types() -> Vec<&'static SinkRegistration> {
    let mut all: Vec<_> = inventory::iter::<SinkRegistration>.into_iter().collect();
    all.sort_by_key(|r| r.kind);
    all
}

/// The keys every `[sinks.NAME]` table takes, owned by the framework.
pub const SINK_KEYS: &[&str] = &[
    "type",
    "events",
    "min_band",
    "tenants",
    "kris",
    "max_age",
    "timeout",
    "for",
    "repeat_every",
];

/// A sink's own table and the framework's settings it runs under.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub name: String,
    table: Dict,
    /// One delivery attempt at most.
    pub timeout: Duration,
}

impl SinkSettings {
    pub fn new(name: impl Into<String>, table: Dict, timeout: Duration) -> Self {
        Self {
            name: name.into(),
            table,
            timeout,
        }
    }

    /// `sinks.NAME.field`.
    pub fn key(&self, field: &str) -> String {
        format!("sinks.{}.{field}", self.name)
    }

    /// Deserialize the sink's own keys (declare `deny_unknown_fields`); errors name the key.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        parse_keys(&self.table, &format!("sinks.{}", self.name), SINK_KEYS)
    }
}

/// Why a batch was not delivered.
#[derive(Debug, Clone)]
pub struct SinkError {
    pub message: String,
    /// Trying again will not help (a 4xx other than 408/429, a refused payload): the events
    /// are dead at once.
    pub permanent: bool,
}

impl SinkError {
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }

    /// An HTTP sink's failure: a 4xx other than 408 and 429, or a redirect to another origin,
    /// will not change by trying again; anything else may.
    pub fn from_http(e: crate::HttpError) -> Self {
        let permanent = matches!(e, crate::HttpError::Redirect { .. })
            || e.status()
                .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429);
        Self {
            message: e.to_string(),
            permanent,
        }
    }
}

/// A place events go.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// Deliver `events` (event JSON, oldest first) as one batch. `Ok`: all of them arrived;
    /// `Err`: none is known to have (they are sent again: receivers dedupe on `id`).
    async fn deliver(&self, events: &[Value]) -> Result<(), SinkError>;
}

/// The event types a sink gets unless its `events` says otherwise: band changes, failures and
/// recoveries, new incidents.
pub const DEFAULT_EVENTS: &[&str] = &[
    "kri.band_changed",
    "kri.failed",
    "kri.recovered",
    "connector.failed",
    "incident.created",
];

/// Every event type there is.
pub const EVENT_TYPES: &[&str] = &[
    "kri.band_changed",
    "kri.failed",
    "kri.recovered",
    "connector.failed",
    "incident.created",
    "incident.updated",
    "kri.value",
];

/// Which events a sink gets (`events`, `min_band`, `tenants`, `kris`).
#[derive(Debug, Clone)]
pub struct EventFilter {
    pub events: Vec<String>,
    /// A band change is sent when `from` or `to` is at least this band.
    pub min_band: crate::kri::Band,
    /// `None`: every tenant's.
    pub tenants: Option<Vec<String>>,
    /// `None`: every KRI's.
    pub kris: Option<Vec<String>>,
}

fn rank(band: &Value) -> u8 {
    match band.as_str() {
        Some("red") => 3,
        Some("amber") => 2,
        Some("green") => 1,
        _ => 0,
    }
}

impl EventFilter {
    pub fn matches(&self, event: &Value) -> bool {
        let kind = event["type"].as_str().unwrap_or_default();
        if !self.events.iter().any(|e| e == kind) {
            return false;
        }
        if let Some(tenants) = &self.tenants
            && !tenants.iter().any(|t| event["tenant"].as_str() == Some(t))
        {
            return false;
        }
        if let (Some(kris), Some(slug)) = (&self.kris, event["kri"]["slug"].as_str())
            && !kris.iter().any(|k| k == slug)
        {
            return false;
        }
        if kind == "kri.band_changed" {
            let least = rank(&Value::from(self.min_band.as_str()));
            return rank(&event["kri"]["from"]).max(rank(&event["kri"]["to"])) >= least;
        }
        true
    }
}

/// A configured sink: its name and type, which events it gets, how long to keep trying, and
/// the plugin itself.
pub struct SinkConfig {
    pub name: String,
    pub kind: &'static str,
    pub filter: EventFilter,
    /// An event not delivered this long after it happened is dead.
    pub max_age: Duration,
    /// One delivery attempt at most.
    pub timeout: Duration,
    /// `for`: runs in a row a KRI must hold a band before its change is sent (1: at once).
    pub hold: u32,
    /// `repeat_every`: send an amber or red band again while it holds, this often.
    pub repeat_every: Option<Duration>,
    pub sink: Box<dyn Sink>,
}

impl SinkConfig {
    /// Band changes are made by the deliverer from each run's values (`for`, `repeat_every`),
    /// not taken from the outbox as written.
    pub fn shapes_changes(&self) -> bool {
        self.hold > 1 || self.repeat_every.is_some()
    }

    /// The sink needs a `kri.value` event for every stored value.
    pub fn wants_values(&self) -> bool {
        self.shapes_changes() || self.filter.events.iter().any(|e| e == "kri.value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kri::Band;
    use serde_json::json;

    fn change(from: Option<&str>, to: &str) -> Value {
        json!({"type": "kri.band_changed", "tenant": "acme", "kri": {"slug": "pp_vap_count", "from": from, "to": to}})
    }

    #[test]
    fn a_sink_gets_the_events_types_tenants_kris_and_bands_it_asked_for() {
        let f = EventFilter {
            events: DEFAULT_EVENTS.iter().map(|s| s.to_string()).collect(),
            min_band: Band::Amber,
            tenants: None,
            kris: None,
        };
        assert!(f.matches(&change(None, "amber")), "a first amber value");
        assert!(f.matches(&change(Some("red"), "green")), "back to green from red");
        assert!(!f.matches(&change(Some("green"), "green")));
        assert!(
            !f.matches(&json!({"type": "kri.value", "tenant": "acme"})),
            "not asked for"
        );
        assert!(f.matches(&json!({"type": "connector.failed", "tenant": "acme", "kri": null})));
        let narrow = EventFilter {
            min_band: Band::Red,
            tenants: Some(vec!["globex".into()]),
            ..f.clone()
        };
        assert!(!narrow.matches(&change(None, "red")), "another tenant's");
        let red_only = EventFilter {
            min_band: Band::Red,
            ..f.clone()
        };
        assert!(!red_only.matches(&change(Some("green"), "amber")) && red_only.matches(&change(Some("amber"), "red")));
        let kris = EventFilter {
            kris: Some(vec!["pp_other".into()]),
            ..f
        };
        assert!(!kris.matches(&change(None, "red")));
    }
}
