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

use crate::pages::{parse_time, selected};
use kri_agent::scheduler::SlotView;
use kri_config::Loaded;

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

/// The two text formats Prometheus reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0: what Prometheus asks for first.
    OpenMetrics,
    /// The classic text format 0.0.4: for anything that does not ask for OpenMetrics (curl,
    /// `promtool check metrics`, older scrapers).
    Text,
}

impl Format {
    /// OpenMetrics when the `Accept` header names it, else the classic format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.to_ascii_lowercase().contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The exposition text in `format`, its series in a stable order (sorted within each metric).
/// `commit`: the build's commit, for `kri_build_info` (the binary knows it).
pub async fn render(
    loaded: &Loaded,
    store: &Store,
    clock: &dyn Clock,
    slots: &[SlotView],
    format: Format,
    commit: &str,
) -> String {
    let mut registry = Registry::default();
    let up = Gauge::<f64, AtomicU64>::default();
    registry.register(
        "kri_up",
        "1 when the store answered this scrape, 0 when it did not (the other kri_ metrics are then missing)",
        up.clone(),
    );
    let build = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    registry.register(
        "kri_build_info",
        "The kri build serving these metrics: version and commit labels, value 1",
        build.clone(),
    );
    set(
        &build,
        vec![
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
            ("commit", commit.to_owned()),
        ],
        1.0,
    );
    process_metrics(&mut registry);
    let ok = fill(&mut registry, loaded, store, clock, slots).await;
    if let Err(e) = &ok {
        tracing::error!("/metrics: {e}");
    }
    up.set(if ok.is_ok() { 1.0 } else { 0.0 });
    let mut text = String::new();
    if let Err(e) = encode(&mut text, &registry) {
        tracing::error!("/metrics: cannot encode: {e}");
    }
    reshape(&text, format)
}

/// OpenMetrics as the client encodes it, each metric's series sorted (the client keeps them in
/// a hash map, so their order changed at every scrape); for [`Format::Text`], the classic
/// format: no `# UNIT` or `# EOF`, a counter's HELP and TYPE named with its `_total`.
fn reshape(open_metrics: &str, format: Format) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    let mut header: Vec<String> = Vec::new();
    let mut samples: Vec<&str> = Vec::new();
    let flush = |out: &mut String, header: &mut Vec<String>, samples: &mut Vec<&str>| {
        samples.sort_unstable();
        for line in header.drain(..) {
            out.push_str(&line);
            out.push('\n');
        }
        for line in samples.drain(..) {
            out.push_str(line);
            out.push('\n');
        }
    };
    let mut counter_help: Option<String> = None;
    for line in open_metrics.lines() {
        if line.starts_with("# HELP ") {
            flush(&mut out, &mut header, &mut samples);
            counter_help = None;
            if format == Format::Text {
                // Held until TYPE says whether the name takes `_total`.
                counter_help = Some(line.to_owned());
                continue;
            }
            header.push(line.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            if format == Format::OpenMetrics {
                header.push(line.to_owned());
                continue;
            }
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let help = counter_help.take().unwrap_or_default();
            let help_text = help.splitn(4, ' ').nth(3).unwrap_or_default();
            let name = match kind {
                "counter" if !name.ends_with("_total") => format!("{name}_total"),
                "info" if !name.ends_with("_info") => format!("{name}_info"),
                _ => name.to_owned(),
            };
            let kind = if kind == "info" { "gauge" } else { kind };
            header.push(format!("# HELP {name} {help_text}"));
            header.push(format!("# TYPE {name} {kind}"));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            if format == Format::OpenMetrics {
                if line == "# EOF" {
                    flush(&mut out, &mut header, &mut samples);
                }
                header.push(line.to_owned());
            }
        } else if !line.is_empty() {
            samples.push(line);
        }
    }
    flush(&mut out, &mut header, &mut samples);
    out
}

/// `process_*` metrics of this process, as Prometheus's own clients export them, read from
/// /proc (Linux; elsewhere they are absent).
fn process_metrics(registry: &mut Registry) {
    let Some(p) = ProcessStats::read() else { return };
    let mut g = |name: &str, help: &str, unit: Option<Unit>, v: f64| {
        let gauge = Gauge::<f64, AtomicU64>::default();
        gauge.set(v);
        match unit {
            Some(u) => registry.register_with_unit(name, help, u, gauge),
            None => registry.register(name, help, gauge),
        }
    };
    g(
        "process_resident_memory",
        "Resident memory size",
        Some(Unit::Bytes),
        p.resident_bytes,
    );
    g(
        "process_virtual_memory",
        "Virtual memory size",
        Some(Unit::Bytes),
        p.virtual_bytes,
    );
    g(
        "process_start_time",
        "Start time of the process since the Unix epoch",
        Some(Unit::Seconds),
        p.start_time,
    );
    g("process_open_fds", "Open file descriptors", None, p.open_fds);
    g("process_max_fds", "The limit of open file descriptors", None, p.max_fds);
    let cpu = Counter::<f64, AtomicU64>::default();
    cpu.inc_by(p.cpu_seconds);
    registry.register_with_unit("process_cpu", "User and system CPU time spent", Unit::Seconds, cpu);
}

#[derive(Debug, Default)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time: f64,
    open_fds: f64,
    max_fds: f64,
}

impl ProcessStats {
    #[cfg(target_os = "linux")]
    fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // After the command name in parentheses (which may hold spaces): field 3 onwards.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        // SAFETY: sysconf only reads configuration values.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        let (ticks, page) = (ticks.max(1) as f64, page.max(1) as f64);
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct we own.
        let max_fds = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            limit.rlim_cur as f64
        } else {
            0.0
        };
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            start_time: boot + field(22)? / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
            open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as f64,
            max_fds,
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn read() -> Option<ProcessStats> {
        None
    }
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
            let direction = match k.direction() {
                kri_core::Direction::HigherIsWorse => "higher_is_worse",
                kri_core::Direction::LowerIsWorse => "lower_is_worse",
            };
            let base = || {
                vec![
                    ("tenant", tenant.name.clone()),
                    ("slug", k.slug().to_owned()),
                    ("module", m.reg.module.to_owned()),
                ]
            };
            // The KRI's series carry its direction, so PromQL can tell "past red" either way.
            let with_direction = |key: &'static str, v: &str| {
                let mut l = base();
                l.push(("direction", direction.to_owned()));
                l.push((key, v.to_owned()));
                l
            };
            let with = |key: &'static str, v: &str| {
                let mut l = base();
                l.push((key, v.to_owned()));
                l
            };
            let unit = k.unit().as_str();
            let key = (tenant.name.as_str(), k.slug());
            if let Some(good) = good.get(&key) {
                set(&value, with_direction("unit", unit), good.value.unwrap_or(f64::NAN));
                if let Some(t) = parse_time(&good.measured_at) {
                    set(&measured, base(), seconds(&t));
                }
            }
            // The thresholds the newest band was computed with, as stored with its value; the
            // config's only for a value stored before they were kept (or none yet).
            let newest = newest.get(&key);
            let configured = tenant.thresholds_for(k);
            let (amber_at, red_at) = match newest.and_then(|v| v.amber.zip(v.red)) {
                Some(stored) => stored,
                None => (configured.amber, configured.red),
            };
            let mut amber = with_direction("unit", unit);
            amber.push(("level", "amber".into()));
            set(&threshold, amber, amber_at);
            let mut red = with_direction("unit", unit);
            red.push(("level", "red".into()));
            set(&threshold, red, red_at);
            for b in ["green", "amber", "red"] {
                let on = newest.and_then(|v| v.band.as_deref()) == Some(b);
                set(&band, with_direction("band", b), f64::from(u8::from(on)));
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
        "When the newest run of each connector with status ok finished (Unix time; 0 when none has)",
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
    let summaries = store.run_summary().await?;
    // Every enabled connector has a last success: 0 until it has one, so an alert on its age
    // fires for a connector that never succeeded too.
    for t in &loaded.tenants {
        for m in t.modules.iter().filter(|m| m.connector.is_some()) {
            let done = summaries
                .iter()
                .any(|s| s.tenant == t.name && s.module == m.reg.module && s.last_success.is_some());
            if !done {
                set(
                    &last_success,
                    vec![("tenant", t.name.clone()), ("module", m.reg.module.to_owned())],
                    0.0,
                );
            }
        }
    }
    for s in summaries {
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

    // The sinks: what each delivered, what waits (and for how long), what it gave up on.
    let delivered = Family::<Labels, Counter>::default();
    registry.register(
        "kri_sink_events_delivered",
        "Events each sink delivered since the store was made",
        delivered.clone(),
    );
    let dead = gauge(
        registry,
        "kri_sink_events_dead",
        "Events each sink gave up on (dead)",
        None,
    );
    let waiting = gauge(
        registry,
        "kri_sink_events_waiting",
        "Events each sink wants that are not delivered yet (counted up to 10,000)",
        None,
    );
    let oldest = gauge(
        registry,
        "kri_sink_oldest_waiting_age",
        "How old the oldest event waiting for each sink is (0 when none waits)",
        Some(Unit::Seconds),
    );
    for sink in kri_agent::sink_status(&loaded.sinks, store).await? {
        let labels = || vec![("sink", sink.name.clone()), ("type", sink.kind.to_owned())];
        delivered
            .get_or_create(&labels())
            .inc_by(u64::try_from(sink.delivered).unwrap_or(0));
        set(&dead, labels(), sink.dead as f64);
        set(&waiting, labels(), sink.waiting as f64);
        let age = sink
            .oldest_waiting
            .as_deref()
            .and_then(parse_time)
            .map_or(0.0, |t| (clock.now() - t).num_milliseconds().max(0) as f64 / 1000.0);
        set(&oldest, labels(), age);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_the_scraper_asks_for_it() {
        let prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        for other in [None, Some("*/*"), Some("text/plain")] {
            assert_eq!(Format::negotiate(other), Format::Text, "{other:?}");
        }
    }

    /// The classic format: a counter's HELP and TYPE carry `_total`, no UNIT or EOF, an info
    /// metric is a gauge; each metric's series sorted, in both formats.
    #[test]
    fn reshaped_for_the_classic_format_and_sorted() {
        let om = "# HELP kri_runs Runs.\n# TYPE kri_runs counter\nkri_runs_total{m=\"b\"} 2\nkri_runs_total{m=\"a\"} 1\n\
                  # HELP kri_age Age.\n# TYPE kri_age gauge\n# UNIT kri_age seconds\nkri_age 3\n\
                  # HELP kri_build Build.\n# TYPE kri_build info\nkri_build_info{v=\"1\"} 1\n# EOF\n";
        assert_eq!(
            reshape(om, Format::Text),
            "# HELP kri_runs_total Runs.\n# TYPE kri_runs_total counter\nkri_runs_total{m=\"a\"} 1\n\
             kri_runs_total{m=\"b\"} 2\n# HELP kri_age Age.\n# TYPE kri_age gauge\nkri_age 3\n\
             # HELP kri_build_info Build.\n# TYPE kri_build_info gauge\nkri_build_info{v=\"1\"} 1\n"
        );
        let open = reshape(om, Format::OpenMetrics);
        assert!(
            open.contains("kri_runs_total{m=\"a\"} 1\nkri_runs_total{m=\"b\"} 2\n"),
            "{open}"
        );
        assert!(
            open.ends_with("# EOF\n") && open.contains("# UNIT kri_age seconds\n"),
            "{open}"
        );
    }
}
