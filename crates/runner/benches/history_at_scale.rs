//! A year of history answers as fast as a day: the release binary's `kri serve` and `kri
//! values` on stores filled with the history a year (or a thousand tenants) brings, hourly runs
//! shaped like the demo's (every registered KRI of TAP, EFD, CLEAR and CTR, about 1 % failed).
//!
//! Stores (`STORES`, comma-separated; default all):
//! - `year`: 1 tenant × 400 days, SQLite;
//! - `mssp`: 1,000 tenants × 30 days, SQLite;
//! - `pg30`, `pg90`: the same 100 tenants × 30 and × 90 days, PostgreSQL (a throw-away server).
//!
//! Each has one day more than `[store] keep_days`, so one prune pass removes one day. For each:
//! median and max over `SAMPLES` (default 31) requests of `/`, a tenant's `/`, a KRI page (and
//! its 1y range), `/metrics`, `/api/v1/values`, `/api/v1/kris` and of the whole `kri values`
//! process; then one prune pass of
//! that day (on a copy, through the store library kri runs), its time and its longest batch.
//! Then the ratio of `pg90` to `pg30`, which must stay under 1.3: time must not grow with
//! history. Fails when a target is missed.
//!
//! SQLite stores are generated once into `target/bench-stores/` (by schema version) and reused;
//! delete them after changing a migration that has not shipped.
//!
//! `cargo bench -p kri-runner --bench history_at_scale` (`STORES=year SAMPLES=5` for a quick look).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use kri_core::{Direction, Store};

// The connectors the binary links, so this process sees the same registry.
use kri_connector_clear as _;
use kri_connector_ctr as _;
use kri_connector_efd as _;
use kri_connector_tap as _;

const MODULES: [&str; 4] = ["tap", "efd", "clear", "ctr"];
/// The slot every connector is marked as having run, so `kri serve` starts no run while it is
/// measured.
const FAR_SLOT: &str = "9999-12-31T00:00:00Z";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    tenants: u32,
    days: u32,
    postgres: bool,
}

const SHAPES: [Shape; 4] = [
    Shape {
        name: "year",
        tenants: 1,
        days: 400,
        postgres: false,
    },
    Shape {
        name: "mssp",
        tenants: 1000,
        days: 30,
        postgres: false,
    },
    Shape {
        name: "pg30",
        tenants: 100,
        days: 30,
        postgres: true,
    },
    Shape {
        name: "pg90",
        tenants: 100,
        days: 90,
        postgres: true,
    },
];

impl Shape {
    fn tenant(&self, i: u32) -> String {
        if self.tenants == 1 {
            "default".into()
        } else {
            format!("t{i:04}")
        }
    }
    fn hours(&self) -> u32 {
        // One day more than keep_days: that day is what the prune pass removes.
        (self.days + 1) * 24
    }
}

/// The newest hour of every store: the bench's "now" is a little after it.
fn newest_hour() -> DateTime<Utc> {
    let now = Utc::now();
    Utc.timestamp_opt(now.timestamp() - now.timestamp() % 3600, 0)
        .single()
        .expect("an hour")
}

/// One KRI of the registry, as the generator writes it.
struct Kri {
    module: &'static str,
    connector: &'static str,
    slug: &'static str,
    unit: &'static str,
    amber: f64,
    red: f64,
    higher_is_worse: bool,
}

fn kris() -> Vec<Kri> {
    let mut out = Vec::new();
    for reg in kri_core::registry::registrations() {
        if !MODULES.contains(&reg.module) {
            continue;
        }
        for k in reg.kris {
            let t = k.default_thresholds();
            out.push(Kri {
                module: reg.module,
                connector: reg.id,
                slug: k.slug(),
                unit: k.unit().as_str(),
                amber: t.amber,
                red: t.red,
                higher_is_worse: k.direction() == Direction::HigherIsWorse,
            });
        }
    }
    assert!(out.len() >= 9, "the registry has the Proofpoint KRIs: {}", out.len());
    out
}

/// A value of KRI `k` for tenant `t` at hour `h`: a slow wave around the thresholds, about 1 %
/// failed (no value).
fn value(k: &Kri, t: u32, h: u32) -> (Option<f64>, Option<&'static str>, &'static str) {
    if (h * 7 + t * 13).is_multiple_of(101) {
        return (None, None, "failed");
    }
    let mid = (k.amber + k.red) / 2.0;
    let v = (mid * (1.0 + 0.6 * ((f64::from(h) / 40.0) + f64::from(t)).sin()))
        .max(0.0)
        .round();
    let past = |limit: f64| if k.higher_is_worse { v >= limit } else { v <= limit };
    let band = if past(k.red) {
        "red"
    } else if past(k.amber) {
        "amber"
    } else {
        "green"
    };
    (Some(v), Some(band), "ok")
}

fn time(t: DateTime<Utc>) -> String {
    kri_core::store::fmt_time(&t)
}

/// Fill an SQLite store in one transaction, by the same columns `kri run` writes, then let the
/// store fill its read model from that history (as its migration does for an old store).
async fn generate_sqlite(shape: Shape, path: &Path) {
    let store = Store::open(path).expect("a new store");
    let kris = kris();
    let end = newest_hour();
    let started = Instant::now();
    store
        .call("generating history", move |c| {
            c.execute_batch("PRAGMA cache_size = -1000000")?;
            let tx = c.transaction()?;
            {
                let mut run = tx.prepare(
                    "INSERT INTO runs (tenant, run_id, connector, module, started_at, finished_at, status,
                                       rows_written, rows_skipped, api_calls, error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, 3, NULL)",
                )?;
                let mut val = tx.prepare(
                    "INSERT INTO kri_values (tenant, run_id, connector, slug, measured_at, value, unit, status, band,
                                             message)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?;
                for h in 0..shape.hours() {
                    let at = end - chrono::Duration::hours(i64::from(shape.hours() - 1 - h));
                    let (started, finished) = (time(at), time(at + chrono::Duration::seconds(20)));
                    for t in 1..=shape.tenants {
                        let tenant = shape.tenant(t);
                        let run_id = format!("{:08x}-{t:04}", h);
                        for m in MODULES {
                            let mine: Vec<&Kri> = kris.iter().filter(|k| k.module == m).collect();
                            let values: Vec<_> = mine.iter().map(|k| value(k, t, h)).collect();
                            let failed = values.iter().filter(|v| v.0.is_none()).count();
                            let status = if failed == 0 { "ok" } else { "partial" };
                            run.execute(rusqlite::params![
                                tenant,
                                run_id,
                                mine[0].connector,
                                m,
                                started,
                                finished,
                                status,
                                (mine.len() - failed) as i64
                            ])?;
                            for (k, (v, band, st)) in mine.iter().zip(values) {
                                let message = v.is_none().then_some("the API answered 503");
                                val.execute(rusqlite::params![
                                    tenant,
                                    run_id,
                                    k.connector,
                                    k.slug,
                                    finished,
                                    v,
                                    k.unit,
                                    st,
                                    band,
                                    message
                                ])?;
                            }
                        }
                    }
                }
                let mut slot = tx.prepare("INSERT INTO slots (name, slot) VALUES (?1, ?2)")?;
                for t in 1..=shape.tenants {
                    for m in MODULES {
                        slot.execute(rusqlite::params![
                            kri_core::store::namespace(&shape.tenant(t), m),
                            FAR_SLOT
                        ])?;
                    }
                }
            }
            tx.commit()
        })
        .await
        .expect("history written");
    let written = started.elapsed();
    let started = Instant::now();
    store.rebuild_read_model().await.expect("read model");
    println!(
        "  generated {}: {:.0} s to write, {:.0} s to fill the read model",
        path.display(),
        written.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Fill a PostgreSQL store with the same shape, generated by the server itself.
async fn generate_postgres(shape: Shape, url: &str) {
    let store = Store::connect(url).await.expect("a new store");
    let kris = kris();
    let end = newest_hour();
    let first = end - chrono::Duration::hours(i64::from(shape.hours() - 1));
    let list = |f: &dyn Fn(&Kri) -> String| kris.iter().map(f).collect::<Vec<_>>().join(", ");
    let kri_rows = list(&|k| {
        format!(
            "('{}', '{}', '{}', '{}', {:?}, {:?}, {})",
            k.module, k.connector, k.slug, k.unit, k.amber, k.red, k.higher_is_worse
        )
    });
    let tenant = if shape.tenants == 1 {
        "'default'".to_owned()
    } else {
        "'t' || lpad(t::text, 4, '0')".to_owned()
    };
    let sql = format!(
        r#"
        CREATE TEMP TABLE k (module text, connector text, slug text, unit text, amber float8, red float8, hiw bool);
        INSERT INTO k VALUES {kri_rows};
        CREATE TEMP TABLE g AS
          SELECT t, h, {tenant} AS tenant, lpad(to_hex(h), 8, '0') || '-' || lpad(t::text, 4, '0') AS run_id,
                 to_char(TIMESTAMPTZ '{first}' + h * interval '1 hour', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS started,
                 to_char(TIMESTAMPTZ '{first}' + h * interval '1 hour' + interval '20 seconds', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS finished
          FROM generate_series(1, {tenants}) t, generate_series(0, {last}) h;
        INSERT INTO runs (tenant, run_id, connector, module, started_at, finished_at, status, rows_written,
                          rows_skipped, api_calls, error)
          SELECT g.tenant, g.run_id, m.connector, m.module, g.started, g.finished,
                 CASE WHEN bool_or((g.h * 7 + g.t * 13) % 101 = 0) THEN 'partial' ELSE 'ok' END, count(*), 0, 3, NULL
          FROM g CROSS JOIN (SELECT DISTINCT module, connector FROM k) m JOIN k ON k.module = m.module
          GROUP BY g.tenant, g.run_id, m.connector, m.module, g.started, g.finished, g.h, g.t
          ORDER BY g.h, g.t;
        INSERT INTO kri_values (tenant, run_id, connector, slug, measured_at, value, unit, status, band, message)
          SELECT tenant, run_id, connector, slug, finished, v, unit, CASE WHEN v IS NULL THEN 'failed' ELSE 'ok' END,
                 CASE WHEN v IS NULL THEN NULL
                      WHEN (hiw AND v >= red) OR (NOT hiw AND v <= red) THEN 'red'
                      WHEN (hiw AND v >= amber) OR (NOT hiw AND v <= amber) THEN 'amber' ELSE 'green' END,
                 CASE WHEN v IS NULL THEN 'the API answered 503' END
          FROM (SELECT g.*, k.*,
                       CASE WHEN (g.h * 7 + g.t * 13) % 101 = 0 THEN NULL
                            ELSE greatest(0, round(((k.amber + k.red) / 2 * (1 + 0.6 * sin(g.h / 40.0 + g.t)))::numeric))::float8
                       END AS v
                FROM g CROSS JOIN k) x
          ORDER BY h, t;
        INSERT INTO slots (name, slot)
          SELECT DISTINCT CASE WHEN tenant = 'default' THEN k.module ELSE tenant || '/' || k.module END, '{FAR_SLOT}'
          FROM g CROSS JOIN k;
        "#,
        first = time(first),
        tenants = shape.tenants,
        last = shape.hours() - 1,
    );
    let started = Instant::now();
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", &sql])
        .output()
        .expect("psql runs (install postgresql-client)");
    assert!(
        out.status.success(),
        "generation failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = started.elapsed();
    let started = Instant::now();
    store.rebuild_read_model().await.expect("read model");
    // As autovacuum leaves a store that has been in use: statistics, and pages marked visible
    // (index-only reads).
    let out = Command::new("psql")
        .args([url, "-qc", "VACUUM ANALYZE"])
        .output()
        .expect("psql");
    assert!(out.status.success(), "VACUUM: {}", String::from_utf8_lossy(&out.stderr));
    println!(
        "  generated {} on PostgreSQL: {:.0} s to write, {:.0} s to fill the read model",
        shape.name,
        written.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// The config `kri serve` and `kri values` read: every module on, a daily schedule already
/// marked as run, an API nobody calls.
fn write_config(dir: &Path, shape: Shape, store_line: &str) -> PathBuf {
    let mut text = format!(
        "[store]\n{store_line}\nkeep_days = {}\n\n[proofpoint]\nbase_url = \"http://127.0.0.1:9\"\ncredentials = \"p:s\"\n",
        shape.days
    );
    for m in MODULES {
        text.push_str(&format!("\n[connectors.{m}]\nenabled = true\nschedule = \"daily\"\n"));
    }
    text.push_str("client_id = \"c\"\nclient_secret = \"s\"\nbase_url = \"http://127.0.0.1:9\"\ntoken_url = \"http://127.0.0.1:9/t\"\n");
    if shape.tenants > 1 {
        text.push_str("\n[tenants]\ndir = \"tenants.d\"\n");
        std::fs::create_dir_all(dir.join("tenants.d")).expect("tenants.d");
        for t in 1..=shape.tenants {
            std::fs::write(dir.join(format!("tenants.d/{}.toml", shape.tenant(t))), "").expect("tenant file");
        }
    }
    let path = dir.join("kri.toml");
    std::fs::write(&path, text).expect("config");
    path
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port()
}

#[derive(Default)]
struct Figures(BTreeMap<&'static str, (Duration, Duration)>);

fn summarise(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], *times.last().expect("samples"))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn measure(shape: Shape, config: &Path, store_for_prune: impl AsyncFnOnce() -> Store) -> (Figures, Vec<String>) {
    let samples = env_or("SAMPLES", 31) as usize;
    let port = free_port();
    let bin = env!("CARGO_BIN_EXE_kri");
    let child = Command::new(bin)
        .args([
            "--config",
            config.to_str().expect("utf-8"),
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kri serve starts");
    let _serve = Serve(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let up = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(up.elapsed() < Duration::from_secs(120), "kri serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the scheduler find every slot already run (a lease each) before measuring.
    tokio::time::sleep(Duration::from_secs(if shape.tenants > 100 { 15 } else { 3 })).await;
    let tenant = shape.tenant(shape.tenants.div_ceil(2));
    let q = if shape.tenants > 1 {
        format!("?tenant={tenant}")
    } else {
        String::new()
    };
    let targets: Vec<(&'static str, String)> = vec![
        ("/", "/".into()),
        ("a tenant's /", format!("/{q}")),
        ("a KRI page", format!("/kri/pp_vap_count{q}")),
        // A year of it: the chart from the daily rollups, the breach log from the newest values.
        (
            "a KRI page, 1y",
            format!("/kri/pp_vap_count?range=1y{}", q.replacen('?', "&", 1)),
        ),
        ("/metrics", "/metrics".into()),
        ("/api/v1/values", "/api/v1/values".into()),
        // Each selected KRI's last 90 days, for the band it never left (`perpetual`).
        ("/api/v1/kris", format!("/api/v1/kris{q}")),
    ];
    let mut figures = Figures::default();
    for (name, path) in &targets {
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let started = Instant::now();
            let answer = http.get(format!("{base}{path}")).send().await.expect("an answer");
            let status = answer.status();
            let body = answer.bytes().await.expect("a body");
            times.push(started.elapsed());
            assert!(
                status.is_success(),
                "{path}: {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        figures.0.insert(name, summarise(times));
    }
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let out = Command::new(bin)
            .args(["--config", config.to_str().expect("utf-8"), "values"])
            .env_remove("RUST_LOG")
            .output()
            .expect("kri values runs");
        times.push(started.elapsed());
        assert!(
            out.status.success(),
            "kri values: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    figures.0.insert("kri values", summarise(times));
    drop(_serve);

    // One prune pass of the oldest day, as `kri run` and `kri serve` make it.
    let store = store_for_prune().await;
    let before = newest_hour() - chrono::Duration::days(i64::from(shape.days)) + chrono::Duration::minutes(30);
    let started = Instant::now();
    let pruned = store.prune(before).await.expect("prune");
    let took = started.elapsed();
    figures.0.insert("prune one day", (took, pruned.longest_batch));
    let notes = vec![format!(
        "prune: {} values and {} runs in {} batches",
        pruned.values, pruned.runs, pruned.batches
    )];
    (figures, notes)
}

fn main() {
    let wanted = std::env::var("STORES").unwrap_or_else(|_| "year,mssp,pg30,pg90".into());
    let shapes: Vec<Shape> = SHAPES
        .iter()
        .copied()
        .filter(|s| wanted.split(',').any(|w| w.trim() == s.name))
        .collect();
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-stores");
    std::fs::create_dir_all(&cache).expect("target/bench-stores");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut failures = Vec::new();
    let mut by_shape: BTreeMap<&str, Figures> = BTreeMap::new();
    rt.block_on(async {
        let pg = if shapes.iter().any(|s| s.postgres) {
            // Sized as a server for many tenants would be (PostgreSQL's guide: a quarter of the
            // memory for shared_buffers; 2 GB of this machine's 24), not the 128 MB default.
            Some(
                kri_testpg::TestPg::start_with(&[("shared_buffers", "2GB"), ("effective_cache_size", "12GB")])
                    .expect("a PostgreSQL server (install postgresql)"),
            )
        } else {
            None
        };
        for shape in shapes {
            println!(
                "{}: {} tenant(s) × {} days of hourly history, {}",
                shape.name,
                shape.tenants,
                shape.days,
                if shape.postgres { "PostgreSQL" } else { "SQLite" }
            );
            let dir = tempfile::tempdir().expect("temp dir");
            let (figures, notes) = if shape.postgres {
                let pg = pg.as_ref().expect("server");
                let url = pg.url.clone();
                let db = format!("bench_{}", shape.name);
                let admin = Command::new("psql")
                    .args([&url, "-qc", &format!("CREATE DATABASE {db}")])
                    .output();
                assert!(admin.is_ok_and(|o| o.status.success()), "a database for {db}");
                let url = url.replacen("/postgres", &format!("/{db}"), 1);
                generate_postgres(shape, &url).await;
                let config = write_config(dir.path(), shape, &format!("url = \"{url}\""));
                measure(shape, &config, async || Store::connect(&url).await.expect("store")).await
            } else {
                let rows = shape.tenants * shape.hours();
                // Keyed by the schema version: a store of another shape is made again.
                let schema = Store::in_memory()
                    .expect("store")
                    .schema_version()
                    .await
                    .expect("version");
                let cached = cache.join(format!("{}-{rows}-schema{schema}.db", shape.name));
                if !cached.exists() {
                    let partial = cached.with_extension("partial");
                    let _ = std::fs::remove_file(&partial);
                    generate_sqlite(shape, &partial).await;
                    std::fs::rename(&partial, &cached).expect("cache the store");
                }
                let config = write_config(dir.path(), shape, &format!("path = \"{}\"", cached.display()));
                let copy = dir.path().join("prune.db");
                measure(shape, &config, async || {
                    // Pruned on a copy: the cached store keeps its oldest day for the next run.
                    // The copy is flushed to disk first, so the prune's first fsync does not pay
                    // for writing the whole copy.
                    std::fs::copy(&cached, &copy).expect("a copy");
                    std::fs::File::open(&copy)
                        .and_then(|f| f.sync_all())
                        .expect("the copy on disk");
                    Store::open(&copy).expect("store")
                })
                .await
            };
            for (name, (median, max)) in &figures.0 {
                let (median_goal, max_goal) = goal(shape, name);
                let ok = *median <= median_goal && *max <= max_goal;
                let (a, b) = if *name == "prune one day" {
                    ("took", "longest batch")
                } else {
                    ("median", "max")
                };
                println!(
                    "  {name:<16} {a} {:>10}  {b} {:>10}   goal < {} / < {}  {}",
                    ms(*median),
                    ms(*max),
                    ms(median_goal),
                    ms(max_goal),
                    if ok { "ok" } else { "MISSED" }
                );
                if !ok {
                    failures.push(format!("{}: {name}", shape.name));
                }
            }
            for n in notes {
                println!("  {n}");
            }
            by_shape.insert(shape.name, figures);
        }
    });
    if let (Some(a), Some(b)) = (by_shape.get("pg30"), by_shape.get("pg90")) {
        println!("pg90 / pg30 (the same 100 tenants, three times the history): medians");
        for (name, (m30, _)) in &a.0 {
            if *name == "prune one day" {
                continue;
            }
            let Some((m90, _)) = b.0.get(name) else { continue };
            // Below a millisecond, the ratio is noise: compare to 1 ms at least.
            let floor = Duration::from_millis(1);
            let ratio = m90.max(&floor).as_secs_f64() / m30.max(&floor).as_secs_f64();
            let ok = ratio <= 1.3;
            println!(
                "  {name:<16} {} → {}  ×{ratio:.2}  {}",
                ms(*m30),
                ms(*m90),
                if ok { "ok" } else { "MISSED" }
            );
            if !ok {
                failures.push(format!("pg90/pg30: {name}"));
            }
        }
    }
    if !failures.is_empty() {
        eprintln!("missed: {}", failures.join(", "));
        std::process::exit(1);
    }
}

/// The issue's targets: pages and the API under 100 ms (median) and 300 ms (max); `/metrics`
/// of a thousand tenants under 1 s; `kri values` under 200 ms; a prune pass of one day under
/// 10 s with no batch holding the store over 100 ms.
fn goal(shape: Shape, name: &str) -> (Duration, Duration) {
    let ms = Duration::from_millis;
    match name {
        "/metrics" if shape.tenants >= 1000 => (ms(1000), ms(1000)),
        "kri values" => (ms(200), ms(200)),
        "prune one day" => (ms(10_000), ms(100)),
        _ => (ms(100), ms(300)),
    }
}
