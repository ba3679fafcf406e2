//! The sink against a real Alertmanager (Debian's `prometheus-alertmanager`, started here): a
//! breach appears in its API with kri's labels, moves band, and resolves back in green.

use std::time::Duration;

use kri_core::figment::value::{Dict, Value as Fv};
use kri_core::sink::{Sink, SinkSettings, sink_types};
use serde_json::{Value, json};

use kri_sink_alertmanager as _;

fn sink(table: &[(&str, &str)]) -> Result<Box<dyn Sink>, String> {
    let reg = sink_types()
        .into_iter()
        .find(|r| r.kind == "alertmanager")
        .expect("the alertmanager sink is registered");
    let table: Dict = table
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Fv::from(v.to_string())))
        .collect();
    (reg.build)(&SinkSettings::new("am", table, Duration::from_secs(5))).map_err(|e| e.to_string())
}

fn value(from: Option<&str>, to: &str, v: f64) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({"id": uuid_like(v), "type": "kri.value", "time": now, "tenant": "acme", "severity": "warning",
           "kri": {"slug": "pp_vap_count", "title": "Very Attacked People", "module": "tap", "value": v,
                   "previous_value": 9.0, "from": from, "to": to, "amber": 10.0, "red": 25.0,
                   "direction": "higher-is-worse", "owner": "SOC lead", "action": "Review the VAP list"}})
}

fn uuid_like(v: f64) -> String {
    format!("00000000-0000-4000-8000-{:012}", v as u64)
}

/// The breaches Alertmanager has active: (band, severity, summary).
fn active(am: &kri_testtls::Alertmanager) -> Vec<(String, String, String)> {
    let body = am.get("/api/v2/alerts").expect("Alertmanager answers");
    let alerts: Vec<Value> = serde_json::from_str(&body).expect("a JSON list");
    let mut out: Vec<_> = alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == "KriBreach" && a["labels"]["tenant"] == "acme")
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                s(&a["labels"]["band"]),
                s(&a["labels"]["severity"]),
                s(&a["annotations"]["summary"]),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_breach_fires_in_alertmanager_moves_band_and_resolves() {
    let am = kri_testtls::Alertmanager::start().unwrap_or_else(|e| panic!("{e}"));
    let s = sink(&[("url", &am.url()), ("keep_firing", "2h")]).unwrap();
    s.deliver(&[value(Some("green"), "amber", 12.0)]).await.unwrap();
    assert_eq!(
        active(&am),
        vec![(
            "amber".into(),
            "warning".into(),
            "[acme] Very Attacked People (pp_vap_count) is amber: 12".into()
        )]
    );
    // Sent again (a retry, or the next run's value): still one alert.
    s.deliver(&[value(Some("amber"), "amber", 13.0)]).await.unwrap();
    assert_eq!(active(&am).len(), 1);
    // Red: the amber alert is resolved, the red one fires.
    s.deliver(&[value(Some("amber"), "red", 31.0)]).await.unwrap();
    let now = active(&am);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!((now[0].0.as_str(), now[0].1.as_str()), ("red", "critical"));
    // Back to green: nothing active.
    s.deliver(&[value(Some("red"), "green", 3.0)]).await.unwrap();
    assert_eq!(active(&am), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_address_is_permanent_and_an_outage_is_retried() {
    let am = kri_testtls::Alertmanager::start().unwrap_or_else(|e| panic!("{e}"));
    // Alertmanager behind a route prefix the URL lacks: 404 will not change by trying again.
    let wrong = sink(&[("url", &format!("{}/not-alertmanager", am.url()))]).unwrap();
    let err = wrong.deliver(&[value(None, "red", 30.0)]).await.unwrap_err();
    assert!(err.permanent && err.message.contains("404"), "{err:?}");
    let port = am.port;
    drop(am);
    let down = sink(&[("url", &format!("http://127.0.0.1:{port}"))]).unwrap();
    let err = down.deliver(&[value(None, "red", 30.0)]).await.unwrap_err();
    assert!(!err.permanent, "{err:?}");
}

#[test]
fn config_errors_name_the_key_and_the_fix() {
    let err = |t: &[(&str, &str)]| sink(t).err().expect("refused");
    assert!(err(&[]).contains("sinks.am.url"));
    let e = err(&[("url", "http://127.0.0.1:9093"), ("keep_firing", "soon")]);
    assert!(e.contains("sinks.am.keep_firing") && e.contains("2h"), "{e}");
    let e = err(&[("url", "http://127.0.0.1:9093"), ("username", "kri")]);
    assert!(e.contains("sinks.am.password"), "{e}");
    let e = err(&[("url", "http://127.0.0.1:9093"), ("password", "hunter2-secret")]);
    assert!(e.contains("sinks.am.username") && !e.contains("hunter2-secret"), "{e}");
    let e = err(&[("url", "http://127.0.0.1:9093"), ("external_url", "kri.example")]);
    assert!(e.contains("sinks.am.external_url"), "{e}");
}
