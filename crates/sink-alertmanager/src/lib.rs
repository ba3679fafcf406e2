//! The `alertmanager` sink: what kri finds, as alerts in Prometheus's Alertmanager
//! (`POST /api/v2/alerts`), so teams that already route alerts (grouping, silences,
//! `repeat_interval`, on-call) get kri's breaches where the rest of theirs are.
//!
//! - A KRI in amber or red fires `KriBreach` {tenant, slug, module, band, severity}; the alert is
//!   sent again with every value while the band holds (the sink gets `kri.value` by default), each
//!   time lasting `keep_firing` past the value, as Alertmanager expects from a source. When the
//!   band changes the alert of the band it left is resolved (`endsAt` = the value's time); back
//!   to green resolves it for good.
//! - `kri.failed` fires `KriFailed`, `kri.recovered` resolves it; `connector.failed` fires
//!   `KriConnectorFailed`, resolved by the next value the connector measures.
//! - `incident.*` (when asked for) fire `KriIncident`, resolved when the incident is closed.
//!
//! One batch is one POST; several events about one alert in a batch become its last state.
//! Alertmanager dedupes on the labels, so a batch sent again changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kri_core::auth::{Auth, BasicAuth, BasicCredentials, Outgoing};
use kri_core::budget::Budget;
use kri_core::config::ConfigError;
use kri_core::sink::{Sink, SinkError, SinkRegistration, SinkSettings};
use kri_core::{HttpClient, HttpError, HttpOptions, NoAuth, Request, Secret};
use serde::Deserialize;
use serde_json::{Value, json};

kri_core::inventory::submit! {
    SinkRegistration {
        kind: "alertmanager",
        description: "breaches and failures as alerts in Alertmanager, resolved when they clear",
        build,
        default_events: Some(DEFAULT_EVENTS),
    }
}

/// Besides the usual band changes and failures, every value: an alert is kept firing by being
/// sent again, and resolved by the value that ends it.
const DEFAULT_EVENTS: &[&str] = &[
    "kri.value",
    "kri.band_changed",
    "kri.failed",
    "kri.recovered",
    "connector.failed",
];

const PATH: &str = "/api/v2/alerts";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertmanagerConfig {
    /// Alertmanager's base URL, e.g. `http://alertmanager:9093`.
    url: Option<String>,
    /// How long an alert lasts past the value that fired it unless sent again: longer than the
    /// KRIs' schedule, or a breach lapses between runs.
    #[serde(default = "default_keep_firing")]
    keep_firing: String,
    /// Labels added to every alert (`team = "risk"`), for routing.
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Where `kri serve` is reached: each alert links to its KRI's page (`generatorURL`).
    external_url: Option<String>,
    /// HTTP Basic auth (a proxy in front of Alertmanager): the user, and its password.
    username: Option<String>,
    password: Option<Secret>,
    password_file: Option<std::path::PathBuf>,
    /// …or a bearer token.
    bearer_token: Option<Secret>,
    bearer_token_file: Option<std::path::PathBuf>,
}

fn default_keep_firing() -> String {
    "2h".into()
}

/// The labels kri sets itself: a configured label may not take their place.
const OWN_LABELS: &[&str] = &["alertname", "tenant", "slug", "module", "band", "severity", "incident"];

/// `Authorization: Bearer TOKEN`.
#[derive(Debug)]
struct Bearer(Secret);

#[async_trait::async_trait]
impl Auth for Bearer {
    async fn apply(&self, request: &mut Outgoing<'_>, _: Option<&Budget>) -> Result<(), HttpError> {
        request.set_header("authorization", &format!("Bearer {}", self.0.expose()))
    }
    fn unauthorized_hint(&self) -> String {
        "check the bearer token (bearer_token / bearer_token_file) the proxy in front of Alertmanager expects".into()
    }
}

struct Alertmanager {
    http: HttpClient,
    shape: Shape,
}

/// How events become alerts.
#[derive(Debug, Clone)]
struct Shape {
    keep_firing: chrono::Duration,
    labels: BTreeMap<String, String>,
    external_url: Option<String>,
}

fn label_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

fn build(settings: &SinkSettings) -> Result<Box<dyn Sink>, ConfigError> {
    let cfg: AlertmanagerConfig = settings.parse()?;
    let url = cfg.url.ok_or_else(|| {
        ConfigError::missing(
            settings.key("url"),
            "missing: Alertmanager's address, e.g. \"http://alertmanager:9093\"",
        )
    })?;
    let keep_firing = kri_core::config::parse_duration(&cfg.keep_firing)
        .ok()
        .filter(|d| *d >= std::time::Duration::from_secs(60))
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .ok_or_else(|| {
            ConfigError::invalid(
                settings.key("keep_firing"),
                format!(
                    "`{}` is not a duration of a minute or more; write it like \"2h\", longer than the KRIs' schedule",
                    cfg.keep_firing
                ),
            )
        })?;
    for (name, value) in &cfg.labels {
        if !label_name_ok(name) || OWN_LABELS.contains(&name.as_str()) {
            return Err(ConfigError::invalid(
                settings.key("labels"),
                format!(
                    "`{}` is not a label kri can add: a label name is letters, digits and `_`, not starting with a digit or `__`, and not one of kri's own ({})",
                    kri_core::text::visible(name),
                    OWN_LABELS.join(", ")
                ),
            ));
        }
        if value.is_empty() {
            return Err(ConfigError::invalid(
                settings.key("labels"),
                format!("label `{name}` is empty: Alertmanager drops empty labels; remove it or give it a value"),
            ));
        }
    }
    let password = kri_core::secret::from_value_or_file(
        cfg.password,
        cfg.password_file.as_deref(),
        &settings.key("password"),
        &settings.key("password_file"),
    )?;
    let bearer = kri_core::secret::from_value_or_file(
        cfg.bearer_token,
        cfg.bearer_token_file.as_deref(),
        &settings.key("bearer_token"),
        &settings.key("bearer_token_file"),
    )?;
    let auth: Arc<dyn Auth> = match (cfg.username, password, bearer) {
        (Some(_), _, Some(_)) => {
            return Err(ConfigError::invalid(
                settings.key("bearer_token"),
                "set either username and password (Basic) or bearer_token, not both",
            ));
        }
        (Some(user), Some(password), None) => {
            let pair = Secret::new(format!("{user}:{}", password.expose()));
            let credentials =
                BasicCredentials::parse(&pair).map_err(|m| ConfigError::invalid(settings.key("username"), m))?;
            Arc::new(BasicAuth::new(
                credentials,
                "check username and password (password_file) for the proxy in front of Alertmanager",
            ))
        }
        (Some(_), None, None) => {
            return Err(ConfigError::missing(
                settings.key("password"),
                "missing: username is set, so is its password (better: password_file)",
            ));
        }
        (None, Some(_), _) => {
            return Err(ConfigError::missing(
                settings.key("username"),
                "missing: a password is set without the username it goes with",
            ));
        }
        (None, None, Some(token)) => Arc::new(Bearer(token)),
        (None, None, None) => Arc::new(NoAuth),
    };
    let opts = HttpOptions {
        timeout: settings.timeout,
        // The delivery retries, with back-off, until max_age.
        retries: 0,
        ..HttpOptions::default()
    };
    let base = url.trim().trim_end_matches('/').trim_end_matches(PATH);
    let http = HttpClient::new(base, auth, opts).map_err(|m| ConfigError::invalid(settings.key("url"), m))?;
    let external_url = match cfg.external_url {
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
            return Err(ConfigError::invalid(
                settings.key("external_url"),
                "not an http:// or https:// URL: where kri serve is reached, e.g. \"https://kri.example\"",
            ));
        }
        other => other.map(|u| u.trim_end_matches('/').to_owned()),
    };
    Ok(Box::new(Alertmanager {
        http,
        shape: Shape {
            keep_firing,
            labels: cfg.labels,
            external_url,
        },
    }))
}

fn text(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// A label value: bounded, one line.
fn label(v: &str) -> String {
    kri_core::text::truncate(&kri_core::text::visible(v), 200)
}

fn number(v: &Value) -> String {
    match v.as_f64() {
        Some(n) => n.to_string(),
        None => "none".into(),
    }
}

/// `KriBreach`'s severity for a band.
fn band_severity(band: &str) -> &'static str {
    if band == "red" { "critical" } else { "warning" }
}

/// One alert, as Alertmanager's API takes it.
#[derive(Debug, Clone)]
struct Alert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
    link: Option<String>,
}

impl Alert {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": self.starts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "endsAt": self.ends.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        if let Some(link) = &self.link {
            v["generatorURL"] = Value::from(link.as_str());
        }
        v
    }
}

impl Shape {
    fn labels(&self, alertname: &str, tenant: &str, own: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert("alertname".into(), alertname.into());
        labels.insert("tenant".into(), label(tenant));
        for (k, v) in own {
            labels.insert((*k).into(), label(v));
        }
        labels
    }

    fn link(&self, tenant: &str, slug: Option<&str>) -> Option<String> {
        let base = self.external_url.as_deref()?;
        let enc = |s: &str| kri_core::ids::path_segment(s).unwrap_or_default();
        Some(match slug {
            Some(slug) => format!("{base}/kri/{}?tenant={}", enc(slug), enc(tenant)),
            None => format!("{base}/?tenant={}", enc(tenant)),
        })
    }

    /// The alerts a batch fires and resolves: the last state of each (by its labels), in the
    /// order they first appear.
    fn alerts(&self, events: &[Value]) -> Vec<Alert> {
        let mut order: Vec<String> = Vec::new();
        let mut last: BTreeMap<String, Alert> = BTreeMap::new();
        let mut put = |alert: Alert| {
            let key = serde_json::to_string(&alert.labels).unwrap_or_default();
            if !last.contains_key(&key) {
                order.push(key.clone());
            }
            last.insert(key, alert);
        };
        for e in events {
            let Some(time) = text(&e["time"])
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.to_utc())
            else {
                continue;
            };
            let tenant = text(&e["tenant"]).unwrap_or("default");
            let k = &e["kri"];
            let slug = text(&k["slug"]).unwrap_or_default();
            let module = text(&k["module"]).unwrap_or_default();
            let firing = |labels, annotations, link| Alert {
                labels,
                annotations,
                starts: time,
                ends: time + self.keep_firing,
                link,
            };
            let resolved = |labels, annotations, link| Alert {
                labels,
                annotations,
                starts: time,
                ends: time,
                link,
            };
            match text(&e["type"]).unwrap_or_default() {
                "kri.value" | "kri.band_changed" => {
                    let to = text(&k["to"]);
                    let from = text(&k["from"]);
                    let notes = breach_notes(k, tenant);
                    let link = self.link(tenant, Some(slug));
                    for band in ["amber", "red"] {
                        let labels = self.labels(
                            "KriBreach",
                            tenant,
                            &[
                                ("slug", slug),
                                ("module", module),
                                ("band", band),
                                ("severity", band_severity(band)),
                            ],
                        );
                        if to == Some(band) {
                            put(firing(labels, notes.clone(), link.clone()));
                        } else if from == Some(band) && to.is_some() {
                            // Left this band (measured, in another one): resolved.
                            put(resolved(labels, notes.clone(), link.clone()));
                        }
                    }
                    if !k["value"].is_null() && k["previous_value"].is_null() && !module.is_empty() {
                        // A value after none: the connector measures again, its failure (if
                        // there was one) is over.
                        let labels = self.labels(
                            "KriConnectorFailed",
                            tenant,
                            &[("module", module), ("severity", "critical")],
                        );
                        put(resolved(labels, BTreeMap::new(), self.link(tenant, None)));
                    }
                }
                kind @ ("kri.failed" | "kri.recovered") => {
                    let labels = self.labels(
                        "KriFailed",
                        tenant,
                        &[("slug", slug), ("module", module), ("severity", "critical")],
                    );
                    let title = text(&k["title"]).unwrap_or(slug);
                    let notes = BTreeMap::from([(
                        "summary".to_owned(),
                        label(&format!("[{tenant}] {title} ({slug}) could not be measured")),
                    )]);
                    let link = self.link(tenant, Some(slug));
                    put(if kind == "kri.failed" {
                        firing(labels, notes, link)
                    } else {
                        resolved(labels, notes, link)
                    });
                }
                "connector.failed" => {
                    let module = text(&e["connector"]["module"]).unwrap_or(module);
                    let labels = self.labels(
                        "KriConnectorFailed",
                        tenant,
                        &[("module", module), ("severity", "critical")],
                    );
                    let mut notes = BTreeMap::from([(
                        "summary".to_owned(),
                        label(&format!("[{tenant}] connector {module} failed run after run")),
                    )]);
                    if let Some(error) = text(&e["connector"]["error"]) {
                        notes.insert(
                            "description".into(),
                            kri_core::text::truncate(&kri_core::text::visible(error), 1000),
                        );
                    }
                    put(firing(labels, notes, self.link(tenant, None)));
                }
                "incident.created" | "incident.updated" => {
                    let i = &e["incident"];
                    // CTR's display id is a number; the UUID when there is none.
                    let display = match &i["display_id"] {
                        Value::Number(n) => Some(n.to_string()),
                        other => text(other).map(str::to_owned),
                    };
                    let id = display.as_deref().or(text(&i["id"])).unwrap_or_default();
                    let labels = self.labels(
                        "KriIncident",
                        tenant,
                        &[
                            ("module", text(&i["module"]).unwrap_or_default()),
                            ("incident", id),
                            ("severity", text(&e["severity"]).unwrap_or("info")),
                        ],
                    );
                    let summary = format!(
                        "[{tenant}] incident {id}: {} ({})",
                        text(&i["title"]).unwrap_or_default(),
                        text(&i["state"]).unwrap_or("open")
                    );
                    let notes = BTreeMap::from([("summary".to_owned(), label(&summary))]);
                    let closed = !i["closed_at"].is_null();
                    put(if closed {
                        resolved(labels, notes, None)
                    } else {
                        firing(labels, notes, None)
                    });
                }
                _ => {}
            }
        }
        order.into_iter().filter_map(|k| last.remove(&k)).collect()
    }
}

/// What a person reads on a breach: the value against its thresholds, who owns it, what to do.
fn breach_notes(k: &Value, tenant: &str) -> BTreeMap<String, String> {
    let slug = text(&k["slug"]).unwrap_or_default();
    let title = text(&k["title"]).unwrap_or(slug);
    let mut notes = BTreeMap::from([
        (
            "summary".to_owned(),
            label(&format!(
                "[{tenant}] {title} ({slug}) is {}: {}",
                text(&k["to"]).unwrap_or("unknown"),
                number(&k["value"])
            )),
        ),
        (
            "description".to_owned(),
            label(&format!(
                "value {} (previous {}), amber at {}, red at {}, {}",
                number(&k["value"]),
                number(&k["previous_value"]),
                number(&k["amber"]),
                number(&k["red"]),
                if k["direction"] == "lower-is-worse" {
                    "lower is worse"
                } else {
                    "higher is worse"
                }
            )),
        ),
    ]);
    if let Some(owner) = text(&k["owner"]) {
        notes.insert("owner".into(), label(owner));
    }
    if let Some(action) = text(&k["action"]) {
        let key = if action.starts_with("https://") || action.starts_with("http://") {
            "runbook_url"
        } else {
            "action"
        };
        notes.insert(
            key.into(),
            kri_core::text::truncate(&kri_core::text::visible(action), 1000),
        );
    }
    notes
}

#[async_trait::async_trait]
impl Sink for Alertmanager {
    async fn deliver(&self, events: &[Value]) -> Result<(), SinkError> {
        let alerts: Vec<Value> = self.shape.alerts(events).iter().map(Alert::to_json).collect();
        if alerts.is_empty() {
            return Ok(());
        }
        let request = Request::post(PATH).json(Value::Array(alerts));
        self.http.stream(request).await.map(drop).map_err(SinkError::from_http)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            keep_firing: chrono::Duration::hours(2),
            labels: BTreeMap::from([("team".to_owned(), "risk".to_owned())]),
            external_url: Some("https://kri.example".into()),
        }
    }

    fn value(time: &str, from: Option<&str>, to: &str, value: f64) -> Value {
        json!({"id": "e", "type": "kri.value", "time": time, "tenant": "acme", "severity": "warning",
               "kri": {"slug": "pp_vap_count", "title": "Very Attacked People", "module": "tap",
                       "value": value, "previous_value": 9.0, "from": from, "to": to,
                       "amber": 10.0, "red": 25.0, "direction": "higher-is-worse", "owner": "SOC lead",
                       "action": "https://wiki.example/vap"}})
    }

    #[test]
    fn a_breach_fires_with_its_labels_and_lasts_keep_firing() {
        let alerts = shape().alerts(&[value("2026-11-23T10:20:00Z", Some("green"), "amber", 12.0)]);
        assert_eq!(alerts.len(), 1, "green is not an alert: {alerts:?}");
        let a = alerts[0].to_json();
        assert_eq!(
            a["labels"],
            json!({"alertname": "KriBreach", "tenant": "acme", "slug": "pp_vap_count", "module": "tap",
                   "band": "amber", "severity": "warning", "team": "risk"})
        );
        assert_eq!(
            (a["startsAt"].as_str(), a["endsAt"].as_str()),
            (Some("2026-11-23T10:20:00Z"), Some("2026-11-23T12:20:00Z"))
        );
        assert_eq!(
            a["annotations"]["summary"],
            "[acme] Very Attacked People (pp_vap_count) is amber: 12"
        );
        assert_eq!(a["annotations"]["runbook_url"], "https://wiki.example/vap");
        assert_eq!(a["annotations"]["owner"], "SOC lead");
        assert_eq!(
            a["annotations"]["description"],
            "value 12 (previous 9), amber at 10, red at 25, higher is worse"
        );
        assert_eq!(a["generatorURL"], "https://kri.example/kri/pp_vap_count?tenant=acme");
    }

    #[test]
    fn a_band_left_is_resolved_and_the_last_state_of_an_alert_wins() {
        let events = [
            value("2026-11-23T10:20:00Z", None, "amber", 12.0),
            value("2026-11-23T11:20:00Z", Some("amber"), "red", 30.0),
            value("2026-11-23T12:20:00Z", Some("red"), "green", 3.0),
        ];
        let alerts: Vec<Value> = shape().alerts(&events).iter().map(Alert::to_json).collect();
        let state: Vec<(&str, &str, &str)> = alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == "KriBreach")
            .map(|a| {
                (
                    a["labels"]["band"].as_str().unwrap(),
                    a["startsAt"].as_str().unwrap(),
                    a["endsAt"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            state,
            vec![
                ("amber", "2026-11-23T11:20:00Z", "2026-11-23T11:20:00Z"),
                ("red", "2026-11-23T12:20:00Z", "2026-11-23T12:20:00Z"),
            ],
            "both resolved, each when it was left: {alerts:?}"
        );
        // A failed measurement (no band) neither fires nor resolves a breach.
        let failed = json!({"type": "kri.value", "time": "2026-11-23T10:20:00Z", "tenant": "acme",
                            "kri": {"slug": "pp_vap_count", "module": "tap", "value": null, "from": "red", "to": null}});
        assert!(shape().alerts(&[failed]).is_empty());
    }

    #[test]
    fn failures_fire_and_recoveries_and_new_values_resolve_them() {
        let failed = json!({"type": "connector.failed", "time": "2026-11-23T10:20:00Z", "tenant": "acme",
                            "kri": null, "connector": {"module": "tap", "error": "401\nUnauthorized"}});
        let alerts: Vec<Value> = shape()
            .alerts(std::slice::from_ref(&failed))
            .iter()
            .map(Alert::to_json)
            .collect();
        assert_eq!(alerts[0]["labels"]["alertname"], "KriConnectorFailed");
        assert_eq!(alerts[0]["annotations"]["description"], "401\\nUnauthorized");
        assert_eq!(alerts[0]["endsAt"], "2026-11-23T12:20:00Z");
        let mut back = value("2026-11-23T11:20:00Z", Some("green"), "green", 3.0);
        back["kri"]["previous_value"] = Value::Null;
        let alerts: Vec<Value> = shape().alerts(&[failed, back]).iter().map(Alert::to_json).collect();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(
            alerts[0]["endsAt"], "2026-11-23T11:20:00Z",
            "resolved by the next value"
        );
        let steady = value("2026-11-23T11:20:00Z", Some("green"), "green", 3.0);
        assert!(
            shape().alerts(&[steady]).is_empty(),
            "a value after a value says nothing of a failure"
        );

        let kri = |kind: &str, time: &str| json!({"type": kind, "time": time, "tenant": "acme", "kri": {"slug": "pp_x", "module": "tap", "title": "X"}});
        let alerts: Vec<Value> = shape()
            .alerts(&[
                kri("kri.failed", "2026-11-23T10:20:00Z"),
                kri("kri.recovered", "2026-11-23T13:20:00Z"),
            ])
            .iter()
            .map(Alert::to_json)
            .collect();
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            (alerts[0]["labels"]["alertname"].as_str(), alerts[0]["endsAt"].as_str()),
            (Some("KriFailed"), Some("2026-11-23T13:20:00Z"))
        );
    }

    #[test]
    fn incidents_fire_until_closed() {
        let incident = |closed: Value| {
            json!({"type": "incident.updated", "time": "2026-11-23T10:20:00Z", "tenant": "acme", "severity": "critical",
                   "incident": {"id": "u-1", "module": "ctr", "display_id": 7, "title": "Phish", "state": "Closed",
                                "closed_at": closed}})
        };
        let open = shape().alerts(&[incident(Value::Null)]);
        let closed = shape().alerts(&[incident("2026-11-23T10:00:00Z".into())]);
        assert_eq!(open[0].labels["incident"], "7");
        assert!(open[0].ends > open[0].starts && closed[0].ends == closed[0].starts);
    }

    #[test]
    fn label_names_are_checked() {
        assert!(label_name_ok("team") && label_name_ok("_x1"));
        assert!(!label_name_ok("1team") && !label_name_ok("__name__") && !label_name_ok("a-b") && !label_name_ok(""));
    }
}
