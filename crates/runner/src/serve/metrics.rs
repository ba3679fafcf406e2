//! `GET /metrics`: the Prometheus exposition, built fresh from the store and the scheduler at
//! every scrape (nothing cached), with the Prometheus project's client. Names follow the
//! naming guide: a `kri_` prefix, base units (`_seconds`), `_total` only on counters, one unit
//! per name (a KRI's own unit is its `unit` label).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Duration, Utc};
use kri_core::report::ValueRow;
use kri_core::store::StoreError;
use kri_core::{Clock, Store};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::pages::{parse_time, selected};
use super::scheduler::SlotView;
use crate::config::Loaded;

type Labels = Vec<(&'static str, String)>;
type G = Family<Labels, Gauge<f64, AtomicU64>>;

fn seconds(t: &DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn gauge(registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>) -> G {
    let family = G::default();
    match unit {
        Some(u) => registry.register_with_unit(name, help, u, family.clone()),
        None => registry.register(name, help, family.clone()),
    }
    family
}

fn set(family: &G, labels: Labels, v: f64) {
    family.get_or_create(&labels).set(v);
}

/// The exposition text (OpenMetrics 1.0, which Prometheus reads).
pub async fn render(loaded: &Loaded, store: &Store, clock: &dyn Clock, slots: &[SlotView]) -> String {
    let mut registry = Registry::default();
    let up = Gauge::<f64, AtomicU64>::default();
    registry.register(
        "kri_up",
        "1 when the store answered this scrape, 0 when it did not (the other kri_ metrics are then missing)",
        up.clone(),
    );
    let ok = fill(&mut registry, loaded, store, clock, slots).await;
    if let Err(e) = &ok {
        tracing::error!("/metrics: {e}");
    }
    up.set(if ok.is_ok() { 1.0 } else { 0.0 });
    let mut text = String::new();
    if let Err(e) = encode(&mut text, &registry) {
        tracing::error!("/metrics: cannot encode: {e}");
    }
    text
}

async fn fill(
    registry: &mut Registry,
    loaded: &Loaded,
    store: &Store,
    clock: &dyn Clock,
    slots: &[SlotView],
) -> Result<(), StoreError> {
    let value = gauge(
        registry,
        "kri_value",
        "The newest good value of each selected KRI, in the unit of its unit label",
        None,
    );
    let measured = gauge(
        registry,
        "kri_value_measured_timestamp",
        "When the value in kri_value was measured (Unix time)",
        Some(Unit::Seconds),
    );
    let threshold = gauge(
        registry,
        "kri_threshold",
        "The amber and red thresholds of each KRI (level label), in its unit",
        None,
    );
    let band = gauge(
        registry,
        "kri_band",
        "1 for the band (green, amber, red) of each KRI's newest measurement, 0 for the others",
        None,
    );
    let status = gauge(
        registry,
        "kri_status",
        "1 for the status (ok, unlicensed, failed) of each KRI's newest measurement, 0 for the others",
        None,
    );
    // Two queries for every tenant's KRIs, not two per KRI: a thousand tenants scrape fast.
    let good = store.latest_good_values().await?;
    let good: HashMap<(&str, &str), &ValueRow> =
        good.iter().map(|v| ((v.tenant.as_str(), v.slug.as_str()), v)).collect();
    let newest = store.latest_values().await?;
    let newest: HashMap<(&str, &str), &ValueRow> = newest
        .iter()
        .map(|v| ((v.tenant.as_str(), v.slug.as_str()), v))
        .collect();
    for tenant in &loaded.tenants {
        for (m, k) in selected(tenant) {
            let base = || {
                vec![
                    ("tenant", tenant.name.clone()),
                    ("slug", k.slug().to_owned()),
                    ("module", m.reg.module.to_owned()),
                ]
            };
            let with = |key: &'static str, v: &str| {
                let mut l = base();
                l.push((key, v.to_owned()));
                l
            };
            let unit = k.unit().as_str();
            let key = (tenant.name.as_str(), k.slug());
            if let Some(good) = good.get(&key) {
                set(&value, with("unit", unit), good.value.unwrap_or(f64::NAN));
                if let Some(t) = parse_time(&good.measured_at) {
                    set(&measured, base(), seconds(&t));
                }
            }
            let t = tenant.thresholds_for(k);
            let mut amber = with("unit", unit);
            amber.push(("level", "amber".into()));
            set(&threshold, amber, t.amber);
            let mut red = with("unit", unit);
            red.push(("level", "red".into()));
            set(&threshold, red, t.red);
            let newest = newest.get(&key);
            for b in ["green", "amber", "red"] {
                let on = newest.and_then(|v| v.band.as_deref()) == Some(b);
                set(&band, with("band", b), f64::from(u8::from(on)));
            }
            for s in ["ok", "unlicensed", "failed"] {
                let on = newest.map(|v| v.status.as_str()) == Some(s);
                set(&status, with("status", s), f64::from(u8::from(on)));
            }
        }
    }

    let last_success = gauge(
        registry,
        "kri_last_success_timestamp",
        "When the newest run of each connector with status ok finished (Unix time)",
        Some(Unit::Seconds),
    );
    let duration = gauge(
        registry,
        "kri_last_run_duration",
        "How long the newest run of each connector took",
        Some(Unit::Seconds),
    );
    let runs = Family::<Labels, Counter>::default();
    registry.register(
        "kri_runs",
        "Connector runs recorded, by module and status (ok, partial, failed); pruning old runs does not lower it",
        runs.clone(),
    );
    for s in store.run_summary().await? {
        for (st, n) in &s.by_status {
            runs.get_or_create(&vec![
                ("tenant", s.tenant.clone()),
                ("module", s.module.clone()),
                ("status", st.clone()),
            ])
            .inc_by(*n);
        }
        let labels = || vec![("tenant", s.tenant.clone()), ("module", s.module.clone())];
        if let Some(t) = s.last_success.as_deref().and_then(parse_time) {
            set(&last_success, labels(), seconds(&t));
        }
        if let Some(last) = &s.last
            && let (Some(a), Some(b)) = (parse_time(&last.started_at), parse_time(&last.finished_at))
        {
            let took = (b - a).num_milliseconds().max(0) as f64 / 1000.0;
            set(&duration, labels(), took);
        }
    }

    let next = gauge(
        registry,
        "kri_next_run_timestamp",
        "When each connector's next scheduled run starts (Unix time); absent while it runs",
        Some(Unit::Seconds),
    );
    let running = gauge(
        registry,
        "kri_run_in_progress",
        "1 while a run of the connector is in progress",
        None,
    );
    for s in slots {
        let labels = || vec![("tenant", s.tenant.clone()), ("module", s.module.clone())];
        if let Some(t) = &s.next_at {
            set(&next, labels(), seconds(t));
        }
        set(&running, labels(), f64::from(u8::from(s.running.is_some())));
    }

    let calls = gauge(
        registry,
        "kri_pool_calls_24h",
        "API requests sent in the last 24 hours per module and rate-limit pool (retries and redirects included)",
        None,
    );
    let limit = gauge(
        registry,
        "kri_pool_limit_24h",
        "The rolling 24-hour request limit of the pool, where the API has one",
        None,
    );
    let remaining = gauge(
        registry,
        "kri_pool_remaining_24h",
        "Requests left in the pool's rolling 24-hour limit",
        None,
    );
    let used = store.calls_by_pool(clock.now() - Duration::hours(24)).await?;
    let used: std::collections::HashMap<(&str, &str), u32> =
        used.iter().map(|(ns, p, n)| ((ns.as_str(), p.as_str()), *n)).collect();
    let enabled = loaded
        .tenants
        .iter()
        .flat_map(|t| t.modules.iter().filter(|m| m.connector.is_some()).map(move |m| (t, m)));
    for (t, m) in enabled {
        let namespace = kri_core::store::namespace(&t.name, m.reg.module);
        for pool in m.reg.pools {
            let n = used.get(&(namespace.as_str(), pool.name)).copied().unwrap_or(0);
            let labels = vec![
                ("tenant", t.name.clone()),
                ("module", m.reg.module.to_owned()),
                ("pool", pool.name.to_owned()),
            ];
            set(&calls, labels.clone(), f64::from(n));
            if let Some(l) = pool.limit {
                set(&limit, labels.clone(), f64::from(l));
                set(&remaining, labels, f64::from(l.saturating_sub(n)));
            }
        }
    }
    Ok(())
}
