//! The store: SQLite (a file, the default) or PostgreSQL (several kri processes on one
//! database), behind one [`Store`] handle with the same methods and the same meaning on both.
//! Versioned migrations ([`schema`]); every run in ONE transaction ([`runs`]), so a crash
//! mid-run leaves the last good values intact; every KRI value; the calls made per rate-limit
//! pool ([`calls`]); a small key/value state per connector for cursors and cached facts
//! ([`state`], each row with the version of its shape); and the leases that keep two processes
//! from running one connector at once ([`leases`]).
//!
//! Each method is written once, in SQL both engines understand, on three primitives
//! ([`sql`]): a query, a statement, and a transaction of statements. Where the dialects differ
//! the code branches on the engine and says why.
//!
//! An SQLite file and a folder it creates are owner-only (0600 / 0700): the store holds incident
//! data. Every text written (errors, messages, state) goes through the secret scrubber first. A
//! PostgreSQL URL is shown without its password, everywhere.

pub mod acks;
pub mod calls;
pub mod leases;
mod outbox;
mod postgres;
pub mod prune;
pub mod runs;
mod schema;
pub(crate) mod sql;
pub mod state;
#[cfg(test)]
pub(crate) mod test_support;
pub mod values;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Connection;

pub use acks::Ack;
pub use outbox::{Notice, Notices, SinkProgress};
pub use prune::Pruned;
pub use runs::ModuleRuns;
pub use state::{StateHandle, StateValue};
pub use values::{Cursor, KriState, LatestBand, MAX_PAGE, SeriesPoint, ValuesPage, ValuesQuery};

/// A store problem: what failed, where the store is (a path, or a PostgreSQL URL without its
/// password), and the error underneath.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store {path}: {action} failed: {source}")]
pub struct StoreError {
    pub path: String,
    pub action: &'static str,
    #[source]
    pub source: Arc<StoreFailure>,
}

impl StoreError {
    /// The file is there but is not an SQLite database (a wrong `[store] path`).
    pub fn is_not_a_database(&self) -> bool {
        matches!(
            &*self.source,
            StoreFailure::Sqlite(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::NotADatabase
        )
    }

    pub(crate) fn new(path: String, action: &'static str, source: StoreFailure) -> Self {
        Self {
            path,
            action,
            source: Arc::new(source),
        }
    }
}

/// What went wrong underneath a [`StoreError`].
#[derive(Debug, thiserror::Error)]
pub enum StoreFailure {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// An error of the PostgreSQL server or of the connection to it, with the server's words.
    #[error("{}", sql::pg_message(.0))]
    Postgres(tokio_postgres::Error),
    /// No connection from the pool: the server could not be reached, or every connection stayed
    /// busy for too long.
    #[error("{0}")]
    Pool(String),
    /// A `[store] url` that cannot be used as it is.
    #[error("{0}")]
    Config(String),
    /// The store was migrated by a newer kri.
    #[error("the store has schema version {found} but this kri knows only {known}: it was written by a newer kri")]
    Newer { found: i64, known: usize },
    /// A stored value of another type than the store writes (a damaged or foreign row).
    #[error("unexpected stored value: {0}")]
    Value(String),
    /// Another process kept changing the row while this one tried to change it.
    #[error("{0}")]
    Contended(&'static str),
    /// SQLite's own SQL was asked of a PostgreSQL store ([`Store::call`]).
    #[error("this needs an SQLite store, and the store is PostgreSQL")]
    NotSqlite,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot encode the value: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the store task died: {0}")]
    Task(String),
}

impl From<tokio_postgres::Error> for StoreFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreFailure::Postgres(e)
    }
}

impl StoreFailure {
    pub(crate) fn from_pool(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::{PoolError, TimeoutType};
        StoreFailure::Pool(match e {
            PoolError::Backend(e) => sql::pg_message(&e),
            PoolError::Timeout(TimeoutType::Wait) => {
                "every connection of the pool stayed busy for too long (raise pool_max_size in [store] url?)".into()
            }
            PoolError::Timeout(TimeoutType::Create) => "the server did not accept a connection in time".into(),
            PoolError::Timeout(TimeoutType::Recycle) => "checking a pooled connection took too long".into(),
            PoolError::Closed => "the connection pool is closed".into(),
            PoolError::NoRuntimeSpecified => "the connection pool has no runtime".into(),
            PoolError::PostCreateHook(e) => e.to_string(),
        })
    }
}

/// RFC 3339, UTC, seconds: sortable as text.
pub fn fmt_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The tenant of a store without tenants, and of every row written before them.
pub const DEFAULT_TENANT: &str = "default";

/// The namespace of `module`'s state and call budget for `tenant`: the module itself for the
/// default tenant (so a store from before tenants keeps its state), `tenant/module` otherwise.
pub fn namespace(tenant: &str, module: &str) -> String {
    if tenant == DEFAULT_TENANT {
        module.to_owned()
    } else {
        format!("{tenant}/{module}")
    }
}

/// The store. Cheap to clone (clones share the connection or the pool); SQLite calls run on
/// tokio's blocking pool.
///
/// Many tenants share one store: each run and value carries its tenant. A handle reads all
/// tenants' rows unless [`scoped`](Store::scoped) to one; writes take the tenant from what
/// they write.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// The tenant every read is limited to (`None`: all).
    tenant: Option<Arc<str>>,
    /// Write a `kri.value` event for every stored value (a sink asked for them).
    value_events: bool,
}

#[derive(Clone)]
enum Backend {
    Sqlite {
        conn: Arc<Mutex<Connection>>,
        path: PathBuf,
        /// A second, read-only connection with a small cache for long sequential reads (a
        /// sink draining the outbox), so they never evict the pages the pages and the API
        /// keep hot in the main connection's cache. `None` in memory (one connection only).
        scan: Option<Arc<Mutex<Connection>>>,
    },
    Postgres {
        pool: deadpool_postgres::Pool,
        /// The URL without its password, for messages.
        shown: String,
    },
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = match &self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
        };
        f.debug_struct("Store")
            .field("engine", &engine)
            .field("location", &self.location())
            .field("tenant", &self.tenant_filter())
            .finish()
    }
}

impl Store {
    /// Open (creating if missing) the SQLite store at `path`, switch to WAL and run pending
    /// migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_upto(path, schema::MIGRATIONS.len())
    }

    fn open_upto(path: &Path, version: usize) -> Result<Store, StoreError> {
        let err = |action, e: StoreFailure| StoreError::new(path.display().to_string(), action, e);
        create_private(path).map_err(|e| err("creating it (check [store] path)", e.into()))?;
        let mut conn = Connection::open(path).map_err(|e| err("opening (check [store] path)", e.into()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| err("configuring", e.into()))?;
        schema::use_wal(&conn).map_err(|e| err("switching to WAL", e.into()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| err("configuring", e.into()))?;
        // Up to 64 MiB of pages in memory (taken only as used): with a year of history or many
        // tenants, the indexes a read or a prune walks stay cached instead of read again.
        conn.pragma_update(None, "cache_size", -65_536)
            .map_err(|e| err("configuring", e.into()))?;
        schema::migrate(&mut conn, version).map_err(|e| err("migrating the schema", e))?;
        let scan = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| err("opening for reading", e.into()))?;
        scan.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| err("configuring", e.into()))?;
        scan.pragma_update(None, "cache_size", -2_048)
            .map_err(|e| err("configuring", e.into()))?;
        Ok(Store {
            backend: Backend::Sqlite {
                conn: Arc::new(Mutex::new(conn)),
                path: path.to_owned(),
                scan: Some(Arc::new(Mutex::new(scan))),
            },
            tenant: None,
            value_events: false,
        })
    }

    /// A private in-memory SQLite store (tests, `kri demo`).
    pub fn in_memory() -> Result<Store, StoreError> {
        let err = |e: StoreFailure| StoreError::new(":memory:".into(), "opening", e);
        let mut conn = Connection::open_in_memory().map_err(|e| err(e.into()))?;
        schema::migrate(&mut conn, schema::MIGRATIONS.len()).map_err(err)?;
        Ok(Store {
            backend: Backend::Sqlite {
                conn: Arc::new(Mutex::new(conn)),
                path: PathBuf::from(":memory:"),
                scan: None,
            },
            tenant: None,
            value_events: false,
        })
    }

    /// Connect to the PostgreSQL store at `url` (`postgres://user:password@host:5432/db`) and run
    /// pending migrations. TLS as libpq: `sslmode=disable|prefer|require|verify-ca|verify-full`
    /// (default prefer), `sslrootcert=FILE` (PEM) or `system`. `?pool_max_size=N`
    /// sets how many connections kri keeps at most (8 by default). The password is never shown:
    /// errors name the URL as `postgres://user:***@host:5432/db`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        postgres::connect(url, schema::PG_MIGRATIONS.len()).await
    }

    /// The same store, its reads limited to `tenant`'s rows (`None`: every tenant's, as a new
    /// handle reads). Cheap: it shares the connection or the pool.
    pub fn scoped(&self, tenant: Option<&str>) -> Store {
        Store {
            backend: self.backend.clone(),
            tenant: tenant.map(Arc::from),
            value_events: self.value_events,
        }
    }

    /// The same store, writing a `kri.value` event into the outbox for every value it stores
    /// (when a sink wants them; off by default, as most sinks do not).
    pub fn with_value_events(mut self, on: bool) -> Store {
        self.value_events = on;
        self
    }

    /// The tenant this handle's reads are limited to, if any.
    pub fn tenant_filter(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The SQLite file; for PostgreSQL, the URL without its password (as a path, for code that
    /// only prints it).
    pub fn path(&self) -> &Path {
        match &self.backend {
            Backend::Sqlite { path, .. } => path,
            Backend::Postgres { shown, .. } => Path::new(shown.as_str()),
        }
    }

    /// Where the store is, for people: the SQLite file, or the PostgreSQL URL without its
    /// password.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Sqlite { path, .. } => path.display().to_string(),
            Backend::Postgres { shown, .. } => shown.clone(),
        }
    }

    /// The most connections a PostgreSQL store's pool holds (`None` for SQLite).
    pub fn pool_max_size(&self) -> Option<usize> {
        match &self.backend {
            Backend::Sqlite { .. } => None,
            Backend::Postgres { pool, .. } => Some(pool.status().max_size),
        }
    }

    /// The schema version (number of migrations applied).
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        const ACTION: &str = "reading the schema version";
        match &self.backend {
            // SQLite keeps it in the file header; PostgreSQL has no such slot: a table.
            Backend::Sqlite { conn, .. } => {
                self.on_sqlite(conn, ACTION, |c| {
                    Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?)
                })
                .await
            }
            Backend::Postgres { .. } => self
                .query_opt(ACTION, "SELECT version FROM kri_schema", Vec::new(), |r| r.u32(0))
                .await
                .map(Option::unwrap_or_default),
        }
    }

    /// Run `f` on the SQLite connection itself, in the blocking pool: for tests and tools that
    /// need SQLite's own SQL (PRAGMAs, a dump of the file). Store operations never use it; on a
    /// PostgreSQL store it is an error.
    pub async fn call<R, F>(&self, action: &'static str, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite { conn, .. } => self.on_sqlite(conn, action, |c| Ok(f(c)?)).await,
            Backend::Postgres { .. } => Err(self.error(action, StoreFailure::NotSqlite)),
        }
    }

    pub(crate) fn error(&self, action: &'static str, failure: StoreFailure) -> StoreError {
        StoreError::new(self.location(), action, failure)
    }
}

/// Create the store's folder (0700) and file (0600) when they do not exist, so incident data
/// is never readable by other users. An existing file open to others is reported.
fn create_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        // A symlink to nothing would have SQLite create its target, readable by all: refused.
        if let Ok(md) = std::fs::symlink_metadata(path)
            && md.file_type().is_symlink()
            && std::fs::metadata(path).is_err()
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "it is a symbolic link to nothing; point [store] path at the real file, or remove the link",
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Ok(md) = std::fs::metadata(path)
                    && md.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(
                        "the store {} can be read by other users (mode {:o}); it holds incident data: chmod 600 it",
                        path.display(),
                        md.permissions().mode() & 0o777
                    );
                }
            }
            Err(e) => return Err(e),
        }
    }
    #[cfg(not(unix))]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sql::vals;
    use super::test_support::{Engine, TestStore, on_both_engines};
    use super::*;
    use crate::kri::KriOutcome;
    use crate::kri::{Band, KriStatus};
    use crate::report::{ConnectorReport, ConnectorStatus, RunReport};
    use chrono::TimeZone;
    use serde::Serialize;

    impl StateValue for u32 {
        const VERSION: u32 = 1;
    }

    #[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
    struct Reshaped {
        n: u32,
    }
    impl StateValue for Reshaped {
        const VERSION: u32 = 2;
    }

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, 0, 0).unwrap()
    }

    fn report(run_id: &str, value: Option<f64>) -> RunReport {
        let status = if value.is_some() {
            KriStatus::Ok
        } else {
            KriStatus::Failed
        };
        RunReport {
            run_id: run_id.into(),
            started_at: t(1),
            finished_at: t(2),
            connectors: vec![ConnectorReport {
                tenant: DEFAULT_TENANT.into(),
                connector: "proofpoint-tap".into(),
                module: "tap".into(),
                status: if value.is_some() {
                    ConnectorStatus::Ok
                } else {
                    ConnectorStatus::Failed
                },
                rows_written: u64::from(value.is_some()),
                rows_skipped: 0,
                api_calls: 1,
                error: None,
                kris: vec![KriOutcome {
                    slug: "pp_vap_count",
                    title: "Very Attacked People".into(),
                    owner: None,
                    action: None,
                    value,
                    unit: "count",
                    status,
                    band: value.map(|_| Band::Green),
                    message: None,
                    thresholds: value.map(|_| crate::kri::Thresholds { amber: 20.0, red: 30.0 }),
                }],
                started_at: t(1),
                finished_at: t(2),
            }],
        }
    }

    /// `r` as `tenant`'s.
    fn of(tenant: &str, mut r: RunReport) -> RunReport {
        r.connectors[0].tenant = tenant.into();
        r
    }

    /// `r` with its connector run started and finished at hour `h`.
    fn at(mut r: RunReport, h: u32) -> RunReport {
        r.connectors[0].started_at = t(h);
        r.connectors[0].finished_at = t(h);
        r
    }

    on_both_engines!(
        migrations_run_once_and_record_the_version,
        a_newer_schema_is_refused,
        a_failed_value_keeps_the_last_good_one,
        a_run_that_fails_to_write_leaves_nothing_half_written,
        prune_forgets_old_values_even_when_a_kri_never_had_a_good_one,
        state_is_namespaced_and_scannable,
        a_damaged_or_reshaped_state_row_is_dropped_not_fatal,
        secrets_are_scrubbed_from_everything_written,
        every_read_answers_alike,
        two_takers_of_one_lease_never_both_win,
        two_tenants_with_one_kri_each_see_their_own_values,
        prune_keeps_each_tenants_newest_good_value,
        a_slot_mark_is_written_with_its_run_and_never_moves_back,
        the_newest_values_are_per_tenant_and_kri,
        prune_keeps_each_connectors_last_run,
        prune_goes_in_batches_at_most_once_an_hour,
        the_read_model_kept_by_runs_equals_one_filled_from_history,
        a_value_listing_pages_with_a_cursor,
        hot_reads_use_their_index,
        a_long_chart_reads_days_before_and_values_after,
    );
    on_both_engines!(
        a_runs_events_are_written_with_it_once_each,
        value_events_and_feed_items_are_written_with_what_they_describe,
        an_acknowledgement_holds_while_its_band_does_until_it_lapses_or_is_cleared
    );

    /// `r` with its one value in `band`.
    fn banded(mut r: RunReport, band: Band) -> RunReport {
        r.connectors[0].kris[0].band = Some(band);
        r
    }

    async fn an_acknowledgement_holds_while_its_band_does_until_it_lapses_or_is_cleared(s: TestStore) {
        s.write_run(&at(banded(report("r1", Some(22.0)), Band::Amber), 3))
            .await
            .unwrap();
        let ack = |h: u32, band: &str, until: Option<u32>| Ack {
            tenant: DEFAULT_TENANT.into(),
            slug: "pp_vap_count".into(),
            band: band.into(),
            by: Some("ana".into()),
            note: "known campaign, blocked at the gateway".into(),
            at: fmt_time(&t(h)),
            until: until.map(|u| fmt_time(&t(u))),
            cleared_at: None,
        };
        s.acknowledge(&ack(4, "amber", Some(10))).await.unwrap();
        let now = s.current_acks(t(5)).await.unwrap();
        assert_eq!(now, vec![ack(4, "amber", Some(10))]);
        assert!(s.current_acks(t(10)).await.unwrap().is_empty(), "until has passed");
        assert!(
            s.scoped(Some("globex")).current_acks(t(5)).await.unwrap().is_empty(),
            "another tenant's"
        );
        // Red now: the amber acknowledgement is over.
        s.write_run(&at(banded(report("r2", Some(31.0)), Band::Red), 6))
            .await
            .unwrap();
        assert!(s.current_acks(t(7)).await.unwrap().is_empty(), "the band changed");
        s.acknowledge(&ack(8, "red", None)).await.unwrap();
        assert_eq!(s.current_acks(t(9)).await.unwrap().len(), 1);
        assert_eq!(s.clear_ack(DEFAULT_TENANT, "pp_vap_count", t(9)).await.unwrap(), 1);
        assert!(s.current_acks(t(9)).await.unwrap().is_empty(), "cleared");
        let log = s.ack_log("pp_vap_count", 10).await.unwrap();
        assert_eq!(
            log.iter()
                .map(|a| (a.band.as_str(), a.cleared_at.is_some()))
                .collect::<Vec<_>>(),
            vec![("red", true), ("amber", true)],
            "newest first, both kept"
        );
    }

    /// `kri.value` events only when asked for; a feed's items and their `incident.*` events in
    /// one transaction.
    async fn value_events_and_feed_items_are_written_with_what_they_describe(s: TestStore) {
        s.write_run(&at(report("r1", Some(12.0)), 1)).await.unwrap();
        assert!(s.outbox(0, 100).await.unwrap().is_empty());
        let valued = (*s).clone().with_value_events(true);
        valued.write_run(&at(report("r2", Some(13.0)), 2)).await.unwrap();
        let events = s.outbox(0, 100).await.unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        let v = &events[0].1;
        assert_eq!(
            (
                v["type"].as_str(),
                v["kri"]["value"].as_f64(),
                v["kri"]["previous_value"].as_f64()
            ),
            (Some("kri.value"), Some(13.0), Some(12.0))
        );

        let feed = s.state("acme/ctr");
        let change = |id: &str, created| crate::events::FeedChange {
            id: id.into(),
            created,
            severity: "critical",
            module: "ctr".into(),
            item: serde_json::json!({"title": "phish", "state": "open"}),
        };
        feed.put_feed(
            t(3),
            "acme",
            &[("incident/a".to_owned(), "A".to_owned())],
            vec![change("a", true)],
        )
        .await
        .unwrap();
        feed.put_feed(
            t(4),
            "acme",
            &[("incident/a".to_owned(), "A2".to_owned())],
            vec![change("a", false)],
        )
        .await
        .unwrap();
        let events = s.outbox(events[0].0, 100).await.unwrap();
        let got: Vec<(&str, &str, &str, &str)> = events
            .iter()
            .map(|(_, e)| {
                (
                    e["type"].as_str().unwrap(),
                    e["incident"]["id"].as_str().unwrap(),
                    e["tenant"].as_str().unwrap(),
                    e["severity"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("incident.created", "a", "acme", "critical"),
                ("incident.updated", "a", "acme", "critical")
            ]
        );
        assert_eq!(events[0].1["incident"]["module"], "ctr");
        assert!(events[0].1["run_id"].is_null() && events[0].1["kri"].is_null());
        assert_eq!(feed.get::<String>("incident/a").await.unwrap().as_deref(), Some("A2"));
    }

    /// Band changes against the last good band (a first green value is none), and failures
    /// that reach three in a row, then the recovery: each once, in the run's transaction.
    async fn a_runs_events_are_written_with_it_once_each(s: TestStore) {
        let run = |id: &str, h: u32, value: Option<f64>, band: Option<Band>| {
            let mut r = at(report(id, value), h);
            r.connectors[0].kris[0].band = band;
            r
        };
        s.write_run(&run("r1", 1, Some(12.0), Some(Band::Green))).await.unwrap();
        assert!(
            s.outbox(0, 100).await.unwrap().is_empty(),
            "a first green value is no change"
        );
        s.write_run(&run("r2", 2, Some(22.0), Some(Band::Amber))).await.unwrap();
        s.write_run(&run("r3", 3, Some(23.0), Some(Band::Amber))).await.unwrap();
        s.write_run(&run("r4", 4, Some(31.0), Some(Band::Red))).await.unwrap();
        for (id, h) in [("r5", 5), ("r6", 6), ("r7", 7)] {
            s.write_run(&run(id, h, None, None)).await.unwrap();
        }
        s.write_run(&run("r8", 8, Some(32.0), Some(Band::Red))).await.unwrap();
        // The same run again fails as a whole: no event of it is left behind.
        assert!(s.write_run(&run("r8", 9, Some(1.0), Some(Band::Green))).await.is_err());

        let events = s.outbox(0, 100).await.unwrap();
        let kinds: Vec<(&str, &str)> = events
            .iter()
            .map(|(_, e)| (e["type"].as_str().unwrap(), e["run_id"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("kri.band_changed", "r2"),
                ("kri.band_changed", "r4"),
                ("connector.failed", "r7"),
                ("kri.failed", "r7"),
                ("kri.recovered", "r8"),
            ]
        );
        let amber = &events[0].1;
        assert_eq!(amber["kri"]["from"], "green");
        assert_eq!(amber["kri"]["to"], "amber");
        assert_eq!(
            (amber["kri"]["value"].as_f64(), amber["kri"]["previous_value"].as_f64()),
            (Some(22.0), Some(12.0))
        );
        assert_eq!(
            (amber["kri"]["amber"].as_f64(), amber["kri"]["red"].as_f64()),
            (Some(20.0), Some(30.0))
        );
        assert_eq!(
            (amber["severity"].as_str(), amber["tenant"].as_str()),
            (Some("warning"), Some(DEFAULT_TENANT))
        );
        assert_eq!(amber["kri"]["slug"], "pp_vap_count");
        assert_eq!(events[1].1["severity"], "critical");
        let ids: std::collections::HashSet<&str> = events.iter().map(|(_, e)| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), events.len(), "every event has its own id");
        // Read on from a position: nothing is read twice.
        let rest = s.outbox(events[1].0, 100).await.unwrap();
        assert_eq!(rest.len(), 3);
    }

    on_both_engines!(
        engine: a_store_from_before_tenants_keeps_its_rows_as_the_default_tenants,
        a_store_with_history_gains_its_read_model_in_place
    );

    async fn a_slot_mark_is_written_with_its_run_and_never_moves_back(s: TestStore) {
        assert_eq!(s.slot_done("acme/tap").await.unwrap(), None);
        let mark = |slot: &str| vec![("acme/tap".to_owned(), slot.to_owned())];
        s.write_run_marked(&of("acme", report("r1", Some(1.0))), &mark("2026-11-23T10:05:00Z"))
            .await
            .unwrap();
        assert_eq!(
            s.slot_done("acme/tap").await.unwrap().as_deref(),
            Some("2026-11-23T10:05:00Z")
        );
        // An older slot (a late retry) does not move the mark back.
        s.write_run_marked(&of("acme", report("r2", Some(1.0))), &mark("2026-11-23T09:05:00Z"))
            .await
            .unwrap();
        assert_eq!(
            s.slot_done("acme/tap").await.unwrap().as_deref(),
            Some("2026-11-23T10:05:00Z")
        );
        // A run that cannot be written (its id is taken) leaves the mark where it was.
        assert!(
            s.write_run_marked(&of("acme", report("r1", Some(1.0))), &mark("2026-11-23T11:05:00Z"))
                .await
                .is_err()
        );
        assert_eq!(
            s.slot_done("acme/tap").await.unwrap().as_deref(),
            Some("2026-11-23T10:05:00Z")
        );
        assert_eq!(s.slot_done("globex/tap").await.unwrap(), None);
    }

    async fn the_newest_values_are_per_tenant_and_kri(s: TestStore) {
        s.write_run(&of("acme", at(report("a1", Some(10.0)), 1))).await.unwrap();
        s.write_run(&of("acme", at(report("a2", None), 2))).await.unwrap();
        s.write_run(&of("globex", at(report("g1", Some(7.0)), 1)))
            .await
            .unwrap();
        let newest: Vec<(String, String)> = s
            .latest_values()
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.tenant, v.run_id))
            .collect();
        assert_eq!(newest, [("acme".into(), "a2".into()), ("globex".into(), "g1".into())]);
        let good: Vec<(String, Option<f64>)> = s
            .latest_good_values()
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.tenant, v.value))
            .collect();
        assert_eq!(good, [("acme".into(), Some(10.0)), ("globex".into(), Some(7.0))]);
        let scoped = s.scoped(Some("globex")).latest_values().await.unwrap();
        assert_eq!(scoped.len(), 1);
        assert_eq!(scoped[0].tenant, "globex");
        let bands: Vec<_> = s
            .latest_bands()
            .await
            .unwrap()
            .into_iter()
            .map(|b| (b.tenant, b.band))
            .collect();
        assert_eq!(
            bands,
            [("acme".into(), None), ("globex".into(), Some("green".into()))],
            "acme's newest failed"
        );
    }

    async fn migrations_run_once_and_record_the_version(s: TestStore) {
        let known = schema::MIGRATIONS.len() as u32;
        assert_eq!(s.schema_version().await.unwrap(), known);
        let again = s.reopen().await.unwrap();
        assert_eq!(again.schema_version().await.unwrap(), known);
        match s.engine() {
            Engine::Sqlite => {
                let mode: String = again
                    .call("x", |c| c.pragma_query_value(None, "journal_mode", |r| r.get(0)))
                    .await
                    .unwrap();
                assert_eq!(mode, "wal");
            }
            Engine::Postgres => {
                let rows = again
                    .query("x", "SELECT COUNT(*) FROM kri_schema", Vec::new())
                    .await
                    .unwrap();
                assert_eq!(rows[0].int(0).unwrap(), 1, "one version row");
            }
        }
    }

    async fn a_newer_schema_is_refused(s: TestStore) {
        match s.engine() {
            Engine::Sqlite => {
                s.call("x", |c| c.pragma_update(None, "user_version", 99))
                    .await
                    .unwrap();
            }
            Engine::Postgres => {
                s.execute("x", "UPDATE kri_schema SET version = 99", Vec::new())
                    .await
                    .unwrap();
                let e = s.call("x", |_| Ok(())).await.unwrap_err();
                assert!(e.to_string().contains("needs an SQLite store"), "{e}");
            }
        }
        let e = s.reopen().await.unwrap_err();
        assert!(e.to_string().contains("written by a newer kri"), "{e}");
    }

    async fn a_failed_value_keeps_the_last_good_one(s: TestStore) {
        s.write_run(&report("r1", Some(12.0))).await.unwrap();
        s.write_run(&report("r2", None)).await.unwrap();
        let good = s.last_good("pp_vap_count").await.unwrap().unwrap();
        assert_eq!((good.run_id.as_str(), good.value), ("r1", Some(12.0)));
        // The thresholds it was banded with are kept with it.
        assert_eq!((good.amber, good.red), (Some(20.0), Some(30.0)));
        assert_eq!(s.values(Some("pp_vap_count".into()), 10).await.unwrap().len(), 2);
        assert_eq!(s.history(10, None).await.unwrap().len(), 2);
    }

    async fn a_run_that_fails_to_write_leaves_nothing_half_written(s: TestStore) {
        s.write_run(&report("r1", Some(12.0))).await.unwrap();
        // Same run id again: the runs row conflicts, so the whole transaction must roll back.
        let mut again = report("r1", Some(99.0));
        again.connectors[0].connector = "proofpoint-efd".into();
        again.connectors.push(report("r1", Some(7.0)).connectors.remove(0));
        assert!(s.write_run(&again).await.is_err());
        let values = s.values(None, 10).await.unwrap();
        assert_eq!(values.len(), 1, "{values:?}");
        assert_eq!(values[0].value, Some(12.0));
        // The store is still usable after the rollback.
        s.write_run(&report("r2", Some(13.0))).await.unwrap();
        assert_eq!(s.values(None, 10).await.unwrap().len(), 2);
    }

    /// Regression: the "newest good value per KRI" kept by prune was a `NOT IN` over one row per
    /// slug, NULL for a KRI that never had a good value, and `x NOT IN (…, NULL)` is never true:
    /// one always-failing KRI stopped every value from being pruned.
    async fn prune_forgets_old_values_even_when_a_kri_never_had_a_good_one(s: TestStore) {
        s.write_run(&at(report("r1", Some(1.0)), 1)).await.unwrap();
        s.write_run(&at(report("r2", Some(2.0)), 2)).await.unwrap();
        let never = |id: &str, h| {
            let mut r = at(report(id, None), h);
            r.connectors[0].kris[0].slug = "pp_never_good";
            r
        };
        s.write_run(&never("r3", 3)).await.unwrap();
        s.write_run(&never("r4", 4)).await.unwrap();
        let p = s.prune(t(10)).await.unwrap();
        assert_eq!(p.values, 2, "r1's older value and r3's older failure go");
        assert_eq!(p.runs, 2, "and their runs");
        let left: Vec<_> = s
            .values(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.run_id, v.value))
            .collect();
        assert_eq!(
            left,
            [("r4".into(), None), ("r2".into(), Some(2.0))],
            "each KRI's newest value stays, good or not"
        );
        assert_eq!(s.history(10, None).await.unwrap().len(), 2);
    }

    async fn state_is_namespaced_and_scannable(s: TestStore) {
        let tap = s.state("tap");
        tap.put(t(1), "window/2026-11-23T01", &5u32).await.unwrap();
        tap.put(t(1), "window/2026-11-23T02", &7u32).await.unwrap();
        tap.put(t(2), "window/2026-11-23T02", &8u32).await.unwrap();
        tap.put(t(1), "window_x", &9u32).await.unwrap();
        tap.put(t(1), "Window/upper", &10u32).await.unwrap();
        s.state("ctr").put(t(1), "window/x", &1u32).await.unwrap();
        let all: Vec<(String, u32)> = tap.scan("window/").await.unwrap();
        // A prefix matches ASCII letters in any case (SQLite's LIKE always did), on both
        // engines; `_` and `%` are themselves; keys sort byte by byte.
        assert_eq!(
            all,
            vec![
                ("Window/upper".into(), 10),
                ("window/2026-11-23T01".into(), 5),
                ("window/2026-11-23T02".into(), 8)
            ]
        );
        assert_eq!(tap.get::<u32>("window/2026-11-23T02").await.unwrap(), Some(8));
        assert_eq!(tap.get::<u32>("nope").await.unwrap(), None);
        assert_eq!(tap.delete_prefix("window/").await.unwrap(), 3);
        assert_eq!(tap.get::<u32>("window_x").await.unwrap(), Some(9));
        assert_eq!(s.state("ctr").get::<u32>("window/x").await.unwrap(), Some(1));
        tap.put_many(t(3), &[("a".into(), 1u32), ("b".into(), 2u32)])
            .await
            .unwrap();
        tap.delete("a").await.unwrap();
        assert_eq!(
            tap.scan::<u32>("").await.unwrap(),
            vec![("b".into(), 2), ("window_x".into(), 9)]
        );
    }

    async fn a_damaged_or_reshaped_state_row_is_dropped_not_fatal(s: TestStore) {
        let tap = s.state("tap");
        tap.put(t(1), "siem/a", &1u32).await.unwrap();
        tap.put(t(1), "siem/b", &2u32).await.unwrap();
        s.execute(
            "damage",
            "UPDATE state SET value = '{not json' WHERE key = 'siem/a'",
            Vec::new(),
        )
        .await
        .unwrap();
        let rows: Vec<(String, u32)> = tap.scan("siem/").await.unwrap();
        assert_eq!(rows, vec![("siem/b".to_owned(), 2)], "the damaged row is skipped");
        let left = s
            .query("count", "SELECT COUNT(*) FROM state", Vec::new())
            .await
            .unwrap();
        assert_eq!(left[0].int(0).unwrap(), 1, "and deleted, so it is read again");
        // A row written in shape version 1 is not read as version 2.
        assert_eq!(tap.get::<Reshaped>("siem/b").await.unwrap(), None);
        tap.put(t(2), "siem/b", &Reshaped { n: 3 }).await.unwrap();
        assert_eq!(tap.get::<Reshaped>("siem/b").await.unwrap(), Some(Reshaped { n: 3 }));
    }

    async fn secrets_are_scrubbed_from_everything_written(s: TestStore) {
        let _ = crate::secret::Secret::new("store-secret-123");
        let mut r = report("r1", None);
        r.connectors[0].error = Some("server said store-secret-123".into());
        r.connectors[0].kris[0].message = Some("echo: store-secret-123".into());
        s.write_run(&r).await.unwrap();
        #[derive(Clone, Serialize, serde::Deserialize)]
        struct Echo(String);
        impl StateValue for Echo {
            const VERSION: u32 = 1;
        }
        s.state("ctr")
            .put(t(1), "incident/x", &Echo("title store-secret-123".into()))
            .await
            .unwrap();
        let mut dump = Vec::new();
        for sql in [
            "SELECT error FROM runs",
            "SELECT message FROM kri_values",
            "SELECT value FROM state",
        ] {
            for row in s.query("dump", sql, Vec::new()).await.unwrap() {
                dump.extend(row.opt_text(0).unwrap());
            }
        }
        assert_eq!(dump.len(), 3, "{dump:?}");
        assert!(
            dump.iter()
                .all(|t| !t.contains("store-secret-123") && t.contains("[redacted]")),
            "{dump:?}"
        );
    }

    /// Every read, on rows written by both engines alike: the same answers.
    async fn every_read_answers_alike(s: TestStore) {
        s.write_run(&at(report("ab12-one", Some(10.0)), 1)).await.unwrap();
        s.write_run(&at(report("ab34-two", None), 2)).await.unwrap();
        let mut three = at(report("cd56-three", Some(4.5)), 3);
        three.connectors[0].module = "efd".into();
        three.connectors[0].connector = "proofpoint-efd".into();
        three.connectors[0].status = ConnectorStatus::Partial;
        s.write_run(&three).await.unwrap();
        s.write_run(&at(report("ef78-four", Some(16.0)), 4)).await.unwrap();

        let ids = |rows: &[crate::report::RunRow]| rows.iter().map(|r| r.run_id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(&s.history(10, None).await.unwrap()),
            ["ef78-four", "cd56-three", "ab34-two", "ab12-one"]
        );
        assert_eq!(
            ids(&s.history(2, Some("tap".into())).await.unwrap()),
            ["ef78-four", "ab34-two"]
        );
        assert_eq!(
            ids(&s.run_rows("AB").await.unwrap()),
            ["ab12-one", "ab34-two"],
            "any case"
        );
        assert_eq!(
            ids(&s.run_rows("ab1_").await.unwrap()),
            ["ab12-one"],
            "`_` is no wildcard"
        );
        let row = &s.run_rows("cd56").await.unwrap()[0];
        assert_eq!(
            (
                row.module.as_str(),
                row.status.as_str(),
                row.rows_written,
                row.api_calls
            ),
            ("efd", "partial", 1, 1)
        );
        assert_eq!(row.started_at, "2026-11-23T03:00:00Z");

        let values = s.values_since(Some("pp_vap_count".into()), None, 10).await.unwrap();
        let seen: Vec<_> = values.iter().map(|v| (v.value, v.previous, v.delta)).collect();
        assert_eq!(
            seen,
            [
                (Some(16.0), Some(4.5), Some(11.5)),
                (Some(4.5), Some(10.0), Some(-5.5)),
                (None, Some(10.0), None),
                (Some(10.0), None, None)
            ]
        );
        assert_eq!(s.values_since(None, Some(t(3)), 10).await.unwrap().len(), 2);
        let run = s.run_values("ab34-two").await.unwrap();
        assert_eq!(
            (run.len(), run[0].status.as_str(), run[0].band.clone()),
            (1, "failed", None)
        );
        let series = |since, max| {
            let s = &s;
            async move {
                s.series("pp_vap_count", since, max)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|v| (v.measured_at, v.value))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            series(t(2), 10).await,
            [
                ("2026-11-23T02:00:00Z".into(), None),
                ("2026-11-23T03:00:00Z".into(), Some(4.5)),
                ("2026-11-23T04:00:00Z".into(), Some(16.0))
            ],
            "the range, oldest first"
        );
        assert_eq!(
            series(t(0), 2).await,
            [
                ("2026-11-23T01:00:00Z".into(), Some(10.0)),
                ("2026-11-23T04:00:00Z".into(), Some(16.0))
            ],
            "capped: its ends"
        );
        assert_eq!(s.last_good("pp_vap_count").await.unwrap().unwrap().value, Some(16.0));
        assert!(s.last_good("pp_nothing").await.unwrap().is_none());

        let summary = s.run_summary().await.unwrap();
        let seen: Vec<_> = summary
            .iter()
            .map(|m| {
                (
                    m.module.as_str(),
                    m.by_status.clone(),
                    m.last_success.clone(),
                    m.last.as_ref().map(|r| r.run_id.clone()),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("efd", vec![("partial".into(), 1)], None, Some("cd56-three".into())),
                (
                    "tap",
                    vec![("failed".into(), 1), ("ok".into(), 2)],
                    Some("2026-11-23T04:00:00Z".into()),
                    Some("ef78-four".into())
                ),
            ]
        );

        for h in [1, 2, 2] {
            s.record_call("tap", "siem", t(h)).await.unwrap();
        }
        s.record_call("ctr", "api", t(2)).await.unwrap();
        assert_eq!(s.calls_since("tap", "siem", t(1)).await.unwrap(), 2);
        assert_eq!(s.calls_since("tap", "other", t(0)).await.unwrap(), 0);
        assert_eq!(
            s.calls_by_pool(t(0)).await.unwrap(),
            [("ctr".into(), "api".into(), 1), ("tap".into(), "siem".into(), 3)]
        );
        // A call a day later forgets the calls of more than 25 hours before it.
        s.record_call("tap", "siem", t(1) + chrono::Duration::hours(26))
            .await
            .unwrap();
        assert_eq!(s.calls_since("tap", "siem", t(0)).await.unwrap(), 3);
    }

    /// Two processes taking one lease at the same moment: exactly one wins, whether the lease
    /// is new or taken over from a stopped holder.
    async fn two_takers_of_one_lease_never_both_win(s: TestStore) {
        use super::leases::LeaseRow;
        let other = s.reopen().await.unwrap();
        let claim = |id: &str| LeaseRow {
            holder_id: id.into(),
            holder: format!("{id} (kri run)"),
            host: "h".into(),
            pid: 1,
            acquired_at: fmt_time(&t(1)),
            heartbeat_at: fmt_time(&t(1)),
        };
        for round in 0..20 {
            let name = format!("race-{round}");
            if round % 2 == 1 {
                // A stopped holder, whom both takers see as gone.
                s.take_lease(&name, claim("stale"), |_| false).await.unwrap();
            }
            let free = |row: &LeaseRow| row.holder_id == "stale";
            let (a, b) = tokio::join!(
                s.take_lease(&name, claim("a"), free),
                other.take_lease(&name, claim("b"), free)
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!(a.is_none() != b.is_none(), "round {round}: a {a:?}, b {b:?}");
            let loser = a.or(b).unwrap();
            assert!(["a", "b"].contains(&loser.holder_id.as_str()), "{loser:?}");
        }
    }

    /// Rows written at schema 3 (before tenants) are the default tenant's after migration 4,
    /// in the same order; the new key lets another tenant reuse a run id.
    async fn a_store_from_before_tenants_keeps_its_rows_as_the_default_tenants(engine: Engine) {
        let old = TestStore::at_version(engine, 3).await;
        assert_eq!(old.schema_version().await.unwrap(), 3);
        for (run, value) in [("r1", 5.0), ("r2", 6.0)] {
            // Both at one time: history then orders by rowid.
            old.execute(
                "x",
                "INSERT INTO runs (run_id, connector, module, started_at, finished_at, status, rows_written,
                                   rows_skipped, api_calls, error)
                 VALUES (?1, 'proofpoint-tap', 'tap', ?2, ?2, 'ok', 1, 0, 1, NULL)",
                vals![run, fmt_time(&t(1))],
            )
            .await
            .unwrap();
            old.execute(
                "x",
                "INSERT INTO kri_values (run_id, connector, slug, measured_at, value, unit, status, band, message)
                 VALUES (?1, 'proofpoint-tap', 'pp_vap_count', ?2, ?3, 'count', 'ok', 'green', NULL)",
                vals![run, fmt_time(&t(1)), value],
            )
            .await
            .unwrap();
        }
        let s = old.reopen().await.unwrap();
        assert_eq!(s.schema_version().await.unwrap(), schema::MIGRATIONS.len() as u32);
        let seen =
            |rows: Vec<crate::report::RunRow>| rows.into_iter().map(|r| (r.tenant, r.run_id)).collect::<Vec<_>>();
        let default = |run: &str| (DEFAULT_TENANT.to_owned(), run.to_owned());
        assert_eq!(seen(s.history(10, None).await.unwrap()), [default("r2"), default("r1")]);
        let values = s.values(None, 10).await.unwrap();
        assert!(values.iter().all(|v| v.tenant == DEFAULT_TENANT), "{values:?}");
        assert_eq!(values[0].previous, Some(5.0));
        assert_eq!(s.tenants().await.unwrap(), [DEFAULT_TENANT]);
        let mine = s.scoped(Some(DEFAULT_TENANT));
        assert_eq!(mine.last_good("pp_vap_count").await.unwrap().unwrap().run_id, "r2");
        assert!(s.scoped(Some("acme")).history(10, None).await.unwrap().is_empty());
        s.write_run(&of("acme", report("r1", Some(1.0)))).await.unwrap();
        assert_eq!(s.tenants().await.unwrap(), ["acme", DEFAULT_TENANT]);
        assert_eq!(
            seen(s.run_rows("r1").await.unwrap()),
            [default("r1"), ("acme".into(), "r1".into())]
        );
    }

    /// Two tenants measure the same KRI: each one's last good value, previous value, change and
    /// history are its own; an unscoped handle sees both.
    async fn two_tenants_with_one_kri_each_see_their_own_values(s: TestStore) {
        s.write_run(&of("acme", at(report("a1", Some(10.0)), 1))).await.unwrap();
        s.write_run(&of("globex", at(report("g1", Some(100.0)), 2)))
            .await
            .unwrap();
        s.write_run(&of("acme", at(report("a2", None), 3))).await.unwrap();
        s.write_run(&of("globex", at(report("g2", Some(110.0)), 4)))
            .await
            .unwrap();
        let (acme, globex, all) = (s.scoped(Some("acme")), s.scoped(Some("globex")), s.scoped(None));
        assert_eq!(
            (acme.tenant_filter(), all.tenant_filter(), s.tenant_filter()),
            (Some("acme"), None, None)
        );
        assert!(format!("{acme:?}").contains("acme"));

        assert_eq!(acme.last_good("pp_vap_count").await.unwrap().unwrap().run_id, "a1");
        assert_eq!(globex.last_good("pp_vap_count").await.unwrap().unwrap().run_id, "g2");
        let changes = |rows: Vec<crate::report::ValueRow>| {
            rows.into_iter()
                .map(|v| (v.run_id, v.value, v.previous, v.delta))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            changes(acme.values(None, 10).await.unwrap()),
            [
                ("a2".into(), None, Some(10.0), None),
                ("a1".into(), Some(10.0), None, None)
            ]
        );
        assert_eq!(
            changes(globex.values(None, 10).await.unwrap()),
            [
                ("g2".into(), Some(110.0), Some(100.0), Some(10.0)),
                ("g1".into(), Some(100.0), None, None)
            ]
        );
        // Unscoped: every row, each compared with its own tenant's previous value.
        assert_eq!(
            changes(all.values(None, 10).await.unwrap()),
            [
                ("g2".into(), Some(110.0), Some(100.0), Some(10.0)),
                ("a2".into(), None, Some(10.0), None),
                ("g1".into(), Some(100.0), None, None),
                ("a1".into(), Some(10.0), None, None)
            ]
        );
        let ids = |rows: Vec<crate::report::RunRow>| rows.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
        assert_eq!(ids(acme.history(10, None).await.unwrap()), ["a2", "a1"]);
        assert_eq!(ids(globex.history(10, Some("tap".into())).await.unwrap()), ["g2", "g1"]);
        assert_eq!(ids(all.history(10, None).await.unwrap()), ["g2", "a2", "g1", "a1"]);
        assert!(acme.run_rows("g1").await.unwrap().is_empty());
        assert!(acme.run_values("g1").await.unwrap().is_empty());
        assert_eq!(globex.run_values("g1").await.unwrap()[0].tenant, "globex");
        let series = globex.series("pp_vap_count", t(0), 10).await.unwrap();
        assert_eq!(
            series.iter().map(|v| v.value).collect::<Vec<_>>(),
            [Some(100.0), Some(110.0)],
            "g1 and g2"
        );
        let summary: Vec<_> = all
            .run_summary()
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.tenant, m.module, m.by_status, m.last.map(|r| r.run_id)))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "acme".into(),
                    "tap".into(),
                    vec![("failed".into(), 1), ("ok".into(), 1)],
                    Some("a2".into())
                ),
                ("globex".into(), "tap".into(), vec![("ok".into(), 2)], Some("g2".into())),
            ]
        );
        assert_eq!(globex.run_summary().await.unwrap().len(), 1);
        assert_eq!(all.tenants().await.unwrap(), ["acme", "globex"]);
        assert_eq!(acme.tenants().await.unwrap(), ["acme"]);
    }

    /// Pruning keeps the newest value and the newest good value of each tenant's KRI, not
    /// only the newest overall; a scoped handle prunes only its tenant.
    async fn prune_keeps_each_tenants_newest_good_value(s: TestStore) {
        s.write_run(&of("acme", at(report("a1", Some(1.0)), 1))).await.unwrap();
        s.write_run(&of("acme", at(report("a2", Some(2.0)), 3))).await.unwrap();
        s.write_run(&of("globex", at(report("g1", Some(7.0)), 2)))
            .await
            .unwrap();
        s.write_run(&of("globex", at(report("g2", None), 4))).await.unwrap();
        let p = s.scoped(Some("acme")).prune(t(10)).await.unwrap();
        assert_eq!((p.runs, p.values), (1, 1), "a1 only");
        let p = s.prune(t(10)).await.unwrap();
        assert_eq!(
            (p.runs, p.values),
            (0, 0),
            "g1 is globex's newest good value, g2 its newest"
        );
        let left =
            |rows: Vec<crate::report::ValueRow>| rows.into_iter().map(|v| (v.tenant, v.run_id)).collect::<Vec<_>>();
        assert_eq!(
            left(s.values(None, 10).await.unwrap()),
            [
                ("globex".into(), "g2".into()),
                ("acme".into(), "a2".into()),
                ("globex".into(), "g1".into())
            ]
        );
        // A newer good value: g1 and g2 are neither any more.
        s.write_run(&of("globex", at(report("g3", Some(8.0)), 5)))
            .await
            .unwrap();
        let p = s.prune(t(10)).await.unwrap();
        assert_eq!((p.runs, p.values), (2, 2));
        assert_eq!(
            left(s.values(None, 10).await.unwrap()),
            [("globex".into(), "g3".into()), ("acme".into(), "a2".into())]
        );
        assert_eq!(
            s.scoped(Some("globex"))
                .last_good("pp_vap_count")
                .await
                .unwrap()
                .unwrap()
                .value,
            Some(8.0)
        );
    }

    /// A connector's last run stays even when it wrote no value (a run that failed before
    /// measuring anything), so its status and error are still shown.
    async fn prune_keeps_each_connectors_last_run(s: TestStore) {
        let mut nothing = at(report("e1", None), 1);
        nothing.connectors[0].module = "efd".into();
        nothing.connectors[0].connector = "proofpoint-efd".into();
        nothing.connectors[0].kris.clear();
        nothing.connectors[0].error = Some("401".into());
        let mut earlier = nothing.clone();
        earlier.run_id = "e0".into();
        earlier.connectors[0].started_at = t(0);
        earlier.connectors[0].finished_at = t(0);
        s.write_run(&earlier).await.unwrap();
        s.write_run(&nothing).await.unwrap();
        let p = s.prune(t(10)).await.unwrap();
        assert_eq!((p.runs, p.values), (1, 0), "e0 goes");
        let summary = s.run_summary().await.unwrap();
        assert_eq!(summary[0].last.as_ref().unwrap().run_id, "e1");
        assert_eq!(
            summary[0].by_status,
            [("failed".to_owned(), 2)],
            "runs recorded, not runs kept"
        );
    }

    /// Old rows go tenant by tenant in statements of at most 1000 rows, as many transactions
    /// as the time allows (one statement each when no time is allowed), and only the hour's
    /// first caller of `prune_if_due` prunes.
    async fn prune_goes_in_batches_at_most_once_an_hour(s: TestStore) {
        for h in 0..12u32 {
            let mut r = at(report(&format!("r{h}"), Some(f64::from(h))), h);
            let k = r.connectors[0].kris[0].clone();
            r.connectors[0].kris = (0..150).map(|_| k.clone()).collect();
            s.write_run(&r).await.unwrap();
            s.write_run(&of("acme", at(report(&format!("a{h}"), Some(1.0)), h)))
                .await
                .unwrap();
        }
        let p = s.prune_with(t(11), std::time::Duration::ZERO).await.unwrap();
        assert_eq!(p.values, 11 * 150 + 11, "all but each tenant's newest run's values");
        assert_eq!(p.runs, 22);
        // Values: acme's 11 in one statement; the default tenant's 1650 in two (1000, 650).
        // Runs and daily rollups: one statement each tenant. One statement a transaction.
        assert_eq!(p.batches, 7, "{p:?}");
        for h in 0..11u32 {
            let mut r = at(report(&format!("again{h}"), Some(f64::from(h))), h);
            let k = r.connectors[0].kris[0].clone();
            r.connectors[0].kris = (0..150).map(|_| k.clone()).collect();
            s.write_run(&r).await.unwrap();
        }
        let now = t(12);
        let p = s.prune_if_due(now, t(11)).await.unwrap().expect("due");
        assert_eq!(
            (p.values, p.runs),
            (11 * 150, 11),
            "written at old times: they go at once"
        );
        assert!(
            s.prune_if_due(now, t(11)).await.unwrap().is_none(),
            "not again this hour"
        );
        let other = s.reopen().await.unwrap();
        assert!(
            other
                .prune_if_due(now + chrono::Duration::minutes(59), t(11))
                .await
                .unwrap()
                .is_none(),
            "nor by another process"
        );
        assert!(
            other
                .prune_if_due(now + chrono::Duration::minutes(61), t(11))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            s.values(None, 1000).await.unwrap().len(),
            151,
            "the newest run's and acme's newest"
        );
    }

    /// What a run's transaction keeps (newest, newest good, band since, previous value, last
    /// run, last success, runs by status) is exactly what a fill from the history computes.
    async fn the_read_model_kept_by_runs_equals_one_filled_from_history(s: TestStore) {
        let band = |mut r: RunReport, b: Option<Band>| {
            r.connectors[0].kris[0].band = b;
            r
        };
        let runs = [
            of("acme", band(at(report("a1", Some(1.0)), 1), Some(Band::Green))),
            of("acme", band(at(report("a2", Some(30.0)), 2), Some(Band::Red))),
            of("acme", band(at(report("a3", None), 3), None)),
            of("acme", band(at(report("a4", Some(31.0)), 4), Some(Band::Red))),
            of("globex", band(at(report("g1", None), 2), None)),
            of("globex", band(at(report("g2", Some(5.0)), 3), Some(Band::Amber))),
        ];
        for r in &runs {
            s.write_run(r).await.unwrap();
        }
        let mut failed = of("globex", at(report("g3", Some(6.0)), 5));
        failed.connectors[0].status = ConnectorStatus::Partial;
        s.write_run(&failed).await.unwrap();

        let model = || async {
            let latest = s.query(
                "x",
                "SELECT l.tenant, l.slug, n.run_id, g.run_id, l.good_band, l.band_since, l.newest_status, l.newest_band
                 FROM kri_latest l JOIN kri_values n ON n.id = l.newest_id LEFT JOIN kri_values g ON g.id = l.good_id
                 ORDER BY l.tenant, l.slug",
                vals![],
            );
            let previous = s.query(
                "x",
                "SELECT run_id, previous_value FROM kri_values ORDER BY id",
                vals![],
            );
            let connectors = s.query(
                "x",
                "SELECT tenant, module, connector, last_run_id, last_started_at, last_success_at FROM connector_latest
                 ORDER BY tenant, module",
                vals![],
            );
            let counts = s.query(
                "x",
                "SELECT r.tenant, r.module, r.status, r.runs, d.slug, d.day, d.low, d.low_at, d.high, d.high_at, d.band,
                        d.last_at
                 FROM run_counts r LEFT JOIN kri_daily d ON d.tenant = r.tenant ORDER BY 1, 2, 3, 5, 6",
                vals![],
            );
            (
                latest.await.unwrap(),
                previous.await.unwrap(),
                connectors.await.unwrap(),
                counts.await.unwrap(),
            )
        };
        let kept = model().await;
        let text = |rows: &[sql::Row]| format!("{rows:?}");
        assert!(text(&kept.0).contains(r#"Text("acme"), Text("pp_vap_count"), Text("a4"), Text("a4"), Text("red"), Text("2026-11-23T02:00:00Z")"#), "red since a2, through a failure: {:?}", kept.0);
        assert!(text(&kept.0).contains(r#"Text("globex"), Text("pp_vap_count"), Text("g3"), Text("g3"), Text("green"), Text("2026-11-23T05:00:00Z")"#), "{:?}", kept.0);
        assert_eq!(
            kept.1
                .iter()
                .map(|r| (r.text(0).unwrap(), r.opt_real(1).unwrap()))
                .collect::<Vec<_>>(),
            [
                ("a1".into(), None),
                ("a2".into(), Some(1.0)),
                ("a3".into(), Some(30.0)),
                ("a4".into(), Some(30.0)),
                ("g1".into(), None),
                ("g2".into(), None),
                ("g3".into(), Some(5.0)),
            ]
        );
        assert!(text(&kept.2).contains(r#"Text("globex"), Text("tap"), Text("proofpoint-tap"), Text("g3"), Text("2026-11-23T05:00:00Z"), Text("2026-11-23T03:00:00Z")"#), "last success is g2's: {:?}", kept.2);
        s.rebuild_read_model().await.unwrap();
        assert_eq!(model().await, kept);
    }

    /// A store with history from before the read model is brought to the new shape in place,
    /// the read model filled from its history.
    async fn a_store_with_history_gains_its_read_model_in_place(engine: Engine) {
        let old = TestStore::at_version(engine, 5).await;
        let rows = [
            ("acme", "r1", 1, Some(3.0), Some("green"), "ok"),
            ("acme", "r2", 2, None, None, "failed"),
            ("acme", "r3", 3, Some(40.0), Some("red"), "ok"),
            ("acme", "r4", 4, Some(41.0), Some("red"), "ok"),
            ("globex", "r1", 2, Some(9.0), Some("amber"), "ok"),
        ];
        for (tenant, run, h, value, band, status) in rows {
            old.execute(
                "x",
                "INSERT INTO runs (tenant, run_id, connector, module, started_at, finished_at, status, rows_written,
                                   rows_skipped, api_calls, error)
                 VALUES (?1, ?2, 'proofpoint-tap', 'tap', ?3, ?3, ?4, 1, 0, 1, NULL)",
                vals![tenant, run, fmt_time(&t(h)), status],
            )
            .await
            .unwrap();
            old.execute(
                "x",
                "INSERT INTO kri_values (tenant, run_id, connector, slug, measured_at, value, unit, status, band, message)
                 VALUES (?1, ?2, 'proofpoint-tap', 'pp_vap_count', ?3, ?4, 'count', ?5, ?6, NULL)",
                vals![tenant, run, fmt_time(&t(h)), value, if value.is_some() { "ok" } else { "failed" }, band],
            )
            .await
            .unwrap();
        }
        let s = old.reopen().await.unwrap();
        assert_eq!(s.schema_version().await.unwrap(), schema::MIGRATIONS.len() as u32);
        let newest: Vec<_> = s
            .latest_values()
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.tenant, v.run_id, v.previous))
            .collect();
        assert_eq!(
            newest,
            [
                ("acme".into(), "r4".into(), Some(40.0)),
                ("globex".into(), "r1".into(), None)
            ]
        );
        let acme = s.scoped(Some("acme"));
        let listed: Vec<_> = acme
            .values(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.run_id, v.previous, v.delta))
            .collect();
        assert_eq!(
            listed,
            [
                ("r4".into(), Some(40.0), Some(1.0)),
                ("r3".into(), Some(3.0), Some(37.0)),
                ("r2".into(), Some(3.0), None),
                ("r1".into(), None, None)
            ]
        );
        let since = s
            .query("x", "SELECT band_since FROM kri_latest WHERE tenant = 'acme'", vals![])
            .await
            .unwrap();
        assert_eq!(since[0].opt_text(0).unwrap().as_deref(), Some("2026-11-23T03:00:00Z"));
        let summary = acme.run_summary().await.unwrap();
        assert_eq!(summary[0].by_status, [("failed".into(), 1), ("ok".into(), 3)]);
        assert_eq!(summary[0].last_success.as_deref(), Some("2026-11-23T04:00:00Z"));
        assert_eq!(summary[0].last.as_ref().unwrap().run_id, "r4");
        assert_eq!(s.tenants().await.unwrap(), ["acme", "globex"]);
        // And runs go on from there.
        s.write_run(&of("acme", at(report("r5", Some(2.0)), 5))).await.unwrap();
        let v = &acme.values(None, 1).await.unwrap()[0];
        assert_eq!((v.previous, v.delta), (Some(41.0), Some(-39.0)));
    }

    /// Pages of a listing: each at most its limit, a cursor to the next, none repeated or
    /// lost, whether values share a time or not; a bad cursor never reaches the store.
    async fn a_value_listing_pages_with_a_cursor(s: TestStore) {
        for h in 0..5u32 {
            let mut r = at(report(&format!("r{h}"), Some(f64::from(h))), h);
            let k = r.connectors[0].kris[0].clone();
            r.connectors[0].kris = vec![k.clone(), k];
            s.write_run(&r).await.unwrap();
        }
        let mut q = ValuesQuery {
            limit: 3,
            ..ValuesQuery::default()
        };
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = s.values_page(&q).await.unwrap();
            assert!(page.values.len() <= 3);
            pages += 1;
            seen.extend(page.values.iter().map(|v| v.run_id.clone()));
            match page.next_cursor {
                Some(c) => q.cursor = Some(Cursor::parse(&c.to_string()).unwrap()),
                None => break,
            }
        }
        assert_eq!(pages, 4);
        assert_eq!(seen, ["r4", "r4", "r3", "r3", "r2", "r2", "r1", "r1", "r0", "r0"]);
        let since = ValuesQuery {
            since: Some(t(3)),
            limit: 10,
            slug: Some("pp_vap_count".into()),
            cursor: None,
        };
        let page = s.values_page(&since).await.unwrap();
        assert_eq!(page.values.len(), 4);
        assert!(page.next_cursor.is_none(), "the last page says so");
        assert_eq!(s.values(None, 0).await.unwrap().len(), 1, "a limit is at least 1");
    }

    /// A chart over more days than it draws as measured: the days before come from the daily
    /// rollups (each day's low and high, at their times, and its last band), the rest as
    /// measured; the rollups are pruned with the values.
    async fn a_long_chart_reads_days_before_and_values_after(s: TestStore) {
        let day = |d: i64, h: i64| t(0) + chrono::Duration::days(d) + chrono::Duration::hours(h);
        let mut n = 0;
        for d in 0..4 {
            for (h, v, b) in [(2, 5.0, Band::Green), (9, 30.0, Band::Red), (15, 1.0, Band::Green)] {
                n += 1;
                let mut r = report(&format!("r{n}"), Some(v + d as f64));
                r.connectors[0].kris[0].band = Some(b);
                r.connectors[0].started_at = day(d, h);
                r.connectors[0].finished_at = day(d, h);
                s.write_run(&r).await.unwrap();
            }
        }
        let chart = s.chart("pp_vap_count", day(0, 0), day(2, 12), 100).await.unwrap();
        let seen: Vec<_> = chart
            .iter()
            .map(|p| (p.measured_at.as_str(), p.value, p.band.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                // Days 0 and 1: low and high, each day's last band.
                ("2026-11-23T09:00:00Z", Some(30.0), Some("green")),
                ("2026-11-23T15:00:00Z", Some(1.0), Some("green")),
                ("2026-11-24T09:00:00Z", Some(31.0), Some("green")),
                ("2026-11-24T15:00:00Z", Some(2.0), Some("green")),
                // From the start of day 2 on, as measured.
                ("2026-11-25T02:00:00Z", Some(7.0), Some("green")),
                ("2026-11-25T09:00:00Z", Some(32.0), Some("red")),
                ("2026-11-25T15:00:00Z", Some(3.0), Some("green")),
                ("2026-11-26T02:00:00Z", Some(8.0), Some("green")),
                ("2026-11-26T09:00:00Z", Some(33.0), Some("red")),
                ("2026-11-26T15:00:00Z", Some(4.0), Some("green")),
            ]
        );
        assert_eq!(
            s.chart("pp_vap_count", day(3, 0), day(0, 0), 100).await.unwrap().len(),
            3,
            "a range within the raw part reads no rollup"
        );
        let p = s.prune(day(2, 0)).await.unwrap();
        assert_eq!((p.values, p.days), (6, 2), "days 0 and 1 go, values and rollups");
        assert_eq!(
            s.chart("pp_vap_count", day(0, 0), day(3, 0), 100).await.unwrap().len(),
            5,
            "day 2's low and high, day 3's three values"
        );
    }

    /// The hot reads and the prune's batches find their rows by index on both engines, never
    /// by a scan of the history (the plans of the exact SQL the store runs).
    async fn hot_reads_use_their_index(s: TestStore) {
        let engine = s.engine();
        let check = |what: &str, plan: String, index: &str| {
            for line in plan.lines() {
                let l = line.trim_start_matches(|c: char| !c.is_ascii_alphabetic());
                let full_scan = match engine {
                    Engine::Sqlite => {
                        l.starts_with("SCAN ")
                            && !l.contains("USING")
                            && ![
                                "SCAN l",
                                "SCAN c",
                                "SCAN kri_latest",
                                "SCAN connector_latest",
                                "SCAN run_counts",
                            ]
                            .iter()
                            .any(|ok| l == *ok || l.starts_with(&format!("{ok} ")))
                    }
                    Engine::Postgres => l.starts_with("Seq Scan on kri_values") || l.starts_with("Seq Scan on runs"),
                };
                assert!(!full_scan, "{what} ({engine:?}) scans the history:\n{plan}");
            }
            assert!(
                plan.contains(index),
                "{what} ({engine:?}) does not use {index}:\n{plan}"
            );
        };
        let sorted = |what: &str, plan: &str| {
            assert!(
                !plan.contains("TEMP B-TREE") && !plan.contains("Sort  ("),
                "{what} ({engine:?}) sorts instead of reading in index order:\n{plan}"
            );
        };
        // Statistics like a used store's, as the planner has them there: a few tenants, many
        // values each (the planner of an empty PostgreSQL table cannot tell one index from
        // another).
        let tenants: Vec<String> = std::iter::once("acme".to_owned())
            .chain((0..24).map(|i| format!("t{i}")))
            .collect();
        for tenant in &tenants {
            for h in 0..6 {
                let mut r = of(tenant, at(report(&format!("{tenant}-{h}"), Some(1.0)), h));
                let k = r.connectors[0].kris[0].clone();
                r.connectors[0].kris = ["pp_vap_count", "pp_dmarc_enforcement_pct", "pp_bec_impostor_7d"]
                    .into_iter()
                    .map(|slug| KriOutcome { slug, ..k.clone() })
                    .collect();
                s.write_run(&r).await.unwrap();
            }
        }
        if engine == Engine::Postgres {
            s.execute("x", "ANALYZE", vals![]).await.unwrap();
        }
        let acme = s.scoped(Some("acme"));
        let cursor = Some(Cursor::parse(&format!("{}.42", t(3).timestamp())).unwrap());
        let listing = [
            (&*s, None, "kri_values_measured"),
            (&acme, None, "kri_values_tenant_at"),
            (&acme, Some("pp_vap_count"), "kri_values_tenant_slug"),
            (&*s, Some("pp_vap_count"), "kri_values_slug"),
        ];
        for (store, slug, index) in listing {
            for cursor in [None, cursor] {
                let q = ValuesQuery {
                    slug: slug.map(str::to_owned),
                    since: Some(t(0)),
                    limit: 50,
                    cursor,
                };
                let (sql, params) = store.values_query(&q, 51);
                let plan = store.explain(&sql, params).await.unwrap();
                check("the value listing", plan.clone(), index);
                sorted("the value listing", &plan);
            }
        }
        let (sql, params) = acme.daily_query("pp_vap_count", "2026-01-01", "2026-11-01");
        let pk = if engine == Engine::Sqlite {
            "PRIMARY KEY"
        } else {
            "kri_daily_pkey"
        };
        check("a KRI's daily rollups", acme.explain(&sql, params).await.unwrap(), pk);
        let (sql, params) = acme.series_query("pp_vap_count", t(0));
        let plan = acme.explain(&sql, params).await.unwrap();
        check("a KRI's chart", plan.clone(), "kri_values_tenant_slug");
        sorted("a KRI's chart", &plan);
        for (store, module, index) in [
            (&*s, None, "runs_started"),
            (&acme, None, "runs_tenant_started"),
            // (tenant, module, started_at) or (tenant, started_at): either reads one tenant's runs.
            (&acme, Some("tap"), "runs_tenant_"),
        ] {
            let (sql, params) = store.history_query(20, module.map(str::to_owned));
            let plan = store.explain(&sql, params).await.unwrap();
            check("run history", plan.clone(), index);
        }
        let latest = "SELECT v.id FROM kri_latest l JOIN kri_values v ON v.id = l.newest_id ORDER BY l.tenant, l.slug";
        let pk = if engine == Engine::Sqlite {
            "PRIMARY KEY"
        } else {
            "kri_values_pkey"
        };
        check("the newest values", s.explain(latest, vals![]).await.unwrap(), pk);
        let before = fmt_time(&t(3));
        let (sql, params) = Store::prune_query(prune::Table::Values, "acme", &before, 100);
        // (tenant, measured_at) or (tenant, slug, measured_at): either reads one tenant's rows.
        check(
            "a prune batch of values",
            s.explain(&sql, params).await.unwrap(),
            "kri_values_tenant_",
        );
        let (sql, params) = Store::prune_query(prune::Table::Runs, "acme", &before, 100);
        let plan = s.explain(&sql, params).await.unwrap();
        check("a prune batch of runs", plan.clone(), "runs_tenant_started");
        check("a prune batch of runs", plan, "kri_values_tenant_at");
        let (sql, params) = (
            "SELECT v.id FROM runs r JOIN kri_values v ON v.tenant = r.tenant AND v.measured_at = r.finished_at
                                                    AND v.run_id = r.run_id AND v.connector = r.connector
             WHERE r.run_id = ?1",
            vals!["ab12"],
        );
        check(
            "a run's values",
            s.explain(sql, params).await.unwrap(),
            "kri_values_tenant_at",
        );
    }

    #[test]
    fn the_default_tenants_namespace_is_the_module() {
        assert_eq!(namespace(DEFAULT_TENANT, "tap"), "tap");
        assert_eq!(namespace("acme", "tap"), "acme/tap");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_store_and_its_new_folder_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/sub/kri.db");
        let _s = Store::open(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.path().join("new")), 0o700);
    }

    /// Regression: a store path that was a dangling symlink had its target created, mode 0644,
    /// without a word.
    #[cfg(unix)]
    #[test]
    fn a_store_path_that_links_to_nothing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere/kri.db");
        let link = dir.path().join("kri.db");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Store::open(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link to nothing"), "{e}");
        assert!(!target.exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_processes_migrating_a_new_postgres_store_at_once_migrate_it_once() {
        let (url, _db) = test_support::new_database().await;
        let (a, b) = tokio::join!(Store::connect(&url), Store::connect(&url));
        let (a, b) = (a.unwrap(), b.unwrap());
        let known = schema::PG_MIGRATIONS.len() as u32;
        assert_eq!(a.schema_version().await.unwrap(), known);
        assert_eq!(b.schema_version().await.unwrap(), known);
        let rows = a.query("x", "SELECT COUNT(*) FROM kri_schema", vals![]).await.unwrap();
        assert_eq!(rows[0].int(0).unwrap(), 1);
    }

    #[tokio::test]
    async fn a_postgres_password_shows_nowhere() {
        let password = "Pg-Pass-4c1d-never-shown";
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let url = format!("postgres://kri:{password}@127.0.0.1:{port}/kri");
        let e = Store::connect(&url).await.unwrap_err();
        let (text, debug) = (e.to_string(), format!("{e:?}"));
        assert!(
            text.starts_with(&format!(
                "store postgres://kri:***@127.0.0.1:{port}/kri: connecting to PostgreSQL"
            )),
            "{text}"
        );
        assert!(text.contains("check [store] url and that the server runs"), "{text}");
        assert!(text.to_lowercase().contains("refused"), "{text}");
        for shown in [&text, &debug] {
            assert!(!shown.contains(password) && !shown.contains("4c1d"), "{shown}");
        }
        assert!(
            !crate::secret::scrub(&format!("echo {password}")).contains(password),
            "the scrubber knows the password"
        );

        // A URL that cannot be read, refused TLS, a bad pool size: named, without the password.
        for (url, says) in [
            (format!("postgres://kri:{password}@127.0.0.1:notaport/kri"), "port"),
            (
                format!("postgres://kri:{password}@127.0.0.1/kri?sslmode=verify-ca"),
                "sslmode=verify-ca needs sslrootcert=FILE",
            ),
            (
                format!("postgres://kri:{password}@127.0.0.1/kri?pool_max_size=0"),
                "pool_max_size=0",
            ),
            (
                format!("postgres://kri:{password}@127.0.0.1/kri?nonsense=1"),
                "nonsense",
            ),
        ] {
            let e = Store::connect(&url).await.unwrap_err();
            let (text, debug) = (e.to_string(), format!("{e:?}"));
            assert!(
                text.contains("postgres://kri:***@127.0.0.1") && text.contains(says),
                "{text}"
            );
            assert!(!text.contains(password) && !debug.contains(password), "{text} {debug}");
        }

        // A store on a URL with a password (the test server trusts, so it is not checked).
        let (db_url, _db) = test_support::new_database().await;
        let with_password = db_url.replacen("postgres://kri@", &format!("postgres://kri:{password}@"), 1);
        if with_password != db_url {
            let s = Store::connect(&format!("{with_password}?pool_max_size=2"))
                .await
                .unwrap();
            let shown = format!("{s:?} {} {}", s.location(), s.path().display());
            assert!(
                shown.contains("postgres://kri:***@") && !shown.contains(password),
                "{shown}"
            );
        }
    }
}
