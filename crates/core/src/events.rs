//! What kri tells the world: one vocabulary of events, vendor-neutral, produced by the framework
//! when a run is stored and written in the same transaction as its values (the store's outbox),
//! so an event exists exactly when its run does. Sinks (webhooks, Alertmanager, syslog, …)
//! deliver them from there.
//!
//! Event JSON: `{"id", "type", "time", "tenant", "severity", "kri": {"slug", "title", "module",
//! "value", "previous_value", "from", "to", "amber", "red", "direction", "owner", "action"} |
//! null, "incident": {"id", "module", …the feed's summary} | null, "run_id" | null}`.

use serde::Serialize;
use serde_json::{Value, json};

use crate::kri::{Band, Direction};

/// Runs in a row a KRI (or a connector) must fail before `kri.failed` (`connector.failed`).
pub const FAILED_AFTER: usize = 3;

/// The kinds of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventType {
    /// A KRI's band differs from its previous stored band (the first amber or red value is a
    /// change from no band).
    #[serde(rename = "kri.band_changed")]
    BandChanged,
    /// A KRI failed [`FAILED_AFTER`] runs in a row.
    #[serde(rename = "kri.failed")]
    KriFailed,
    /// A KRI measured again after `kri.failed`.
    #[serde(rename = "kri.recovered")]
    KriRecovered,
    /// A connector failed [`FAILED_AFTER`] runs in a row.
    #[serde(rename = "connector.failed")]
    ConnectorFailed,
    /// A KRI's value was stored (only written when a sink asks for `kri.value`).
    #[serde(rename = "kri.value")]
    KriValue,
    /// A connector's feed stored an item it had not seen (a CTR incident).
    #[serde(rename = "incident.created")]
    IncidentCreated,
    /// A feed item changed what matters about it (an incident's state, disposition or close).
    #[serde(rename = "incident.updated")]
    IncidentUpdated,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::BandChanged => "kri.band_changed",
            EventType::KriFailed => "kri.failed",
            EventType::KriRecovered => "kri.recovered",
            EventType::ConnectorFailed => "connector.failed",
            EventType::KriValue => "kri.value",
            EventType::IncidentCreated => "incident.created",
            EventType::IncidentUpdated => "incident.updated",
        }
    }
}

/// The KRI an event is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KriPart {
    pub slug: String,
    pub title: String,
    pub module: String,
    pub value: Option<f64>,
    pub previous_value: Option<f64>,
    pub from: Option<Band>,
    pub to: Option<Band>,
    pub amber: Option<f64>,
    pub red: Option<f64>,
    pub direction: Option<Direction>,
    /// Who owns the KRI and what to do (configured per KRI; null until then).
    pub owner: Option<String>,
    pub action: Option<String>,
}

/// One event. `id` is stable: written once with the run, the same on every delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub kind: EventType,
    /// RFC 3339, when the run that produced it finished.
    pub time: String,
    pub tenant: String,
    /// What the event is about, for ordering per sink: a KRI's slug or a connector's module.
    pub subject: String,
    pub kri: Option<KriPart>,
    /// The connector an event about a connector is for, and why it failed.
    pub connector: Option<(String, Option<String>)>,
    /// The feed item an `incident.*` event is about, as its connector describes it.
    pub incident: Option<FeedChange>,
    pub run_id: String,
}

/// What a connector's feed tells the framework about one item it stored (the feed interface:
/// the connector says what the item is and whether it is new or changed; the framework makes
/// the event and writes it with the item, in one transaction).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedChange {
    /// The item's id at the vendor (an incident's UUID).
    pub id: String,
    /// `true`: first seen now (`incident.created`); `false`: changed (`incident.updated`).
    pub created: bool,
    /// `critical`, `warning` or `info`, as the connector maps the vendor's own severity.
    pub severity: &'static str,
    /// The module whose feed it is.
    pub module: String,
    /// A bounded summary: title, state, disposition, times, a link; whatever the feed keeps.
    pub item: Value,
}

impl Event {
    /// `critical` (red, or a failure), `warning` (amber), `info` (green, recovered).
    pub fn severity(&self) -> &'static str {
        match self.kind {
            EventType::KriFailed | EventType::ConnectorFailed => "critical",
            EventType::KriRecovered => "info",
            EventType::IncidentCreated | EventType::IncidentUpdated => {
                self.incident.as_ref().map(|i| i.severity).unwrap_or("info")
            }
            EventType::BandChanged | EventType::KriValue => match self.kri.as_ref().and_then(|k| k.to) {
                Some(Band::Red) => "critical",
                Some(Band::Amber) => "warning",
                _ => "info",
            },
        }
    }

    /// The event as sinks send it.
    pub fn to_json(&self) -> Value {
        let incident = self.incident.as_ref().map(|i| {
            let mut item = i.item.clone();
            if let Value::Object(m) = &mut item {
                m.insert("id".into(), Value::from(i.id.as_str()));
                m.insert("module".into(), Value::from(i.module.as_str()));
            }
            item
        });
        let run_id = (!self.run_id.is_empty()).then_some(self.run_id.as_str());
        let mut v = json!({
            "id": self.id, "type": self.kind.as_str(), "time": self.time, "tenant": self.tenant,
            "severity": self.severity(), "kri": self.kri, "incident": incident, "run_id": run_id,
        });
        if let Some((module, error)) = &self.connector {
            v["connector"] = json!({"module": module, "error": error});
        }
        v
    }
}
