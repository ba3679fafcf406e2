//! The embedded store: SQLite with versioned migrations ([`schema`]) and WAL. It keeps every run
//! ([`runs`]: one transaction per run, so a crash mid-run leaves the last good values intact),
//! every KRI value, the calls made per rate-limit pool ([`calls`]), a small key/value state per
//! connector for cursors and cached facts ([`state`], each row with the version of its shape),
//! and the leases that keep two processes from running one connector at once ([`leases`]).
//!
//! The file and a folder it creates are owner-only (0600 / 0700): the store holds incident data.
//! Every text written (errors, messages, state) goes through the secret scrubber first.

pub mod calls;
pub mod leases;
pub mod runs;
mod schema;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Connection;

pub use runs::ModuleRuns;
pub use state::{StateHandle, StateValue};

/// A store problem: what failed, where the file is, and the error underneath.
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
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot encode the value: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the store task died: {0}")]
    Task(String),
}

/// RFC 3339, UTC, seconds: sortable as text.
pub fn fmt_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The store. Cheap to clone; calls run on tokio's blocking pool.
#[derive(Clone, Debug)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Store {
    /// Open (creating if missing) the store at `path`, switch to WAL and run pending migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let err = |action, e: StoreFailure| StoreError::new(path.display().to_string(), action, e);
        create_private(path).map_err(|e| err("creating it (check [store] path)", e.into()))?;
        let mut conn = Connection::open(path).map_err(|e| err("opening (check [store] path)", e.into()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| err("configuring", e.into()))?;
        schema::use_wal(&conn).map_err(|e| err("switching to WAL", e.into()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| err("configuring", e.into()))?;
        schema::migrate(&mut conn).map_err(|e| err("migrating the schema", e.into()))?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
        })
    }

    /// A private in-memory store (tests, `kri demo`).
    pub fn in_memory() -> Result<Store, StoreError> {
        let err = |e: rusqlite::Error| StoreError::new(":memory:".into(), "opening", e.into());
        let mut conn = Connection::open_in_memory().map_err(err)?;
        schema::migrate(&mut conn).map_err(err)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path: PathBuf::from(":memory:"),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version (number of migrations applied).
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        self.call("reading the schema version", |c| {
            c.pragma_query_value(None, "user_version", |r| r.get(0))
        })
        .await
    }

    /// Run `f` on the connection in the blocking pool.
    pub async fn call<R, F>(&self, action: &'static str, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let conn = self.conn.clone();
        let path = self.path.display().to_string();
        let joined = tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await;
        match joined {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(StoreError::new(path, action, e.into())),
            Err(e) => Err(StoreError::new(path, action, StoreFailure::Task(e.to_string()))),
        }
    }
}

/// Create the store's folder (0700) and file (0600) when they do not exist, so incident data
/// is never readable by other users. An existing file open to others is reported.
fn create_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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
    use super::*;
    use crate::kri::KriOutcome;
    use crate::kri::{Band, KriStatus};
    use crate::report::{ConnectorReport, ConnectorStatus, RunReport};
    use chrono::TimeZone;
    use rusqlite::Connection;
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
                    value,
                    unit: "count",
                    status,
                    band: value.map(|_| Band::Green),
                    message: None,
                }],
                started_at: t(1),
                finished_at: t(2),
            }],
        }
    }

    #[tokio::test]
    async fn migrations_run_once_and_record_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/kri.db");
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().await.unwrap(), schema::MIGRATIONS.len() as u32);
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().await.unwrap(), schema::MIGRATIONS.len() as u32);
        let mode: String = s
            .call("x", |c| c.pragma_query_value(None, "journal_mode", |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kri.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let e = Store::open(&path).unwrap_err();
        assert!(e.to_string().contains("newer kri"), "{e}");
    }

    #[tokio::test]
    async fn a_failed_value_keeps_the_last_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("kri.db")).unwrap();
        s.write_run(&report("r1", Some(12.0))).await.unwrap();
        s.write_run(&report("r2", None)).await.unwrap();
        let good = s.last_good("pp_vap_count").await.unwrap().unwrap();
        assert_eq!((good.run_id.as_str(), good.value), ("r1", Some(12.0)));
        assert_eq!(s.values(Some("pp_vap_count".into()), 10).await.unwrap().len(), 2);
        assert_eq!(s.history(10, None).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_run_that_fails_to_write_leaves_nothing_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("kri.db")).unwrap();
        s.write_run(&report("r1", Some(12.0))).await.unwrap();
        // Same run id again: the runs row conflicts, so the whole transaction must roll back.
        let mut again = report("r1", Some(99.0));
        again.connectors[0].connector = "proofpoint-efd".into();
        again.connectors.push(report("r1", Some(7.0)).connectors.remove(0));
        assert!(s.write_run(&again).await.is_err());
        let values = s.values(None, 10).await.unwrap();
        assert_eq!(values.len(), 1, "{values:?}");
        assert_eq!(values[0].value, Some(12.0));
    }

    /// Regression: the "newest good value per KRI" kept by prune was a `NOT IN` over one row per
    /// slug, NULL for a KRI that never had a good value, and `x NOT IN (…, NULL)` is never true:
    /// one always-failing KRI stopped every value from being pruned.
    #[tokio::test]
    async fn prune_forgets_old_values_even_when_a_kri_never_had_a_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("kri.db")).unwrap();
        let at = |mut r: RunReport, h: u32| {
            r.connectors[0].started_at = t(h);
            r.connectors[0].finished_at = t(h);
            r
        };
        s.write_run(&at(report("r1", Some(1.0)), 1)).await.unwrap();
        s.write_run(&at(report("r2", Some(2.0)), 2)).await.unwrap();
        let mut never = at(report("r3", None), 3);
        never.connectors[0].kris[0].slug = "pp_never_good";
        s.write_run(&never).await.unwrap();
        let (_, values) = s.prune(t(10)).await.unwrap();
        assert_eq!(values, 2, "r1's older value and r3's failure go");
        let left = s.values(None, 10).await.unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!((left[0].run_id.as_str(), left[0].value), ("r2", Some(2.0)));
    }

    #[tokio::test]
    async fn state_is_namespaced_and_scannable() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("kri.db")).unwrap();
        let tap = s.state("tap");
        tap.put(t(1), "window/2026-11-23T01", &5u32).await.unwrap();
        tap.put(t(1), "window/2026-11-23T02", &7u32).await.unwrap();
        tap.put(t(2), "window/2026-11-23T02", &8u32).await.unwrap();
        s.state("ctr").put(t(1), "window/x", &1u32).await.unwrap();
        let all: Vec<(String, u32)> = tap.scan("window/").await.unwrap();
        assert_eq!(
            all,
            vec![("window/2026-11-23T01".into(), 5), ("window/2026-11-23T02".into(), 8)]
        );
        assert_eq!(tap.get::<u32>("window/2026-11-23T02").await.unwrap(), Some(8));
        assert_eq!(tap.get::<u32>("nope").await.unwrap(), None);
        assert_eq!(tap.delete_prefix("window/").await.unwrap(), 2);
        assert_eq!(s.state("ctr").get::<u32>("window/x").await.unwrap(), Some(1));
    }

    #[tokio::test]
    async fn a_damaged_or_reshaped_state_row_is_dropped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("kri.db")).unwrap();
        let tap = s.state("tap");
        tap.put(t(1), "siem/a", &1u32).await.unwrap();
        tap.put(t(1), "siem/b", &2u32).await.unwrap();
        s.call("damage", |c| {
            c.execute("UPDATE state SET value = '{not json' WHERE key = 'siem/a'", [])
        })
        .await
        .unwrap();
        let rows: Vec<(String, u32)> = tap.scan("siem/").await.unwrap();
        assert_eq!(rows, vec![("siem/b".to_owned(), 2)], "the damaged row is skipped");
        let left: u32 = s
            .call("count", |c| c.query_row("SELECT COUNT(*) FROM state", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(left, 1, "and deleted, so it is read again");
        // A row written in shape version 1 is not read as version 2.
        assert_eq!(tap.get::<Reshaped>("siem/b").await.unwrap(), None);
        tap.put(t(2), "siem/b", &Reshaped { n: 3 }).await.unwrap();
        assert_eq!(tap.get::<Reshaped>("siem/b").await.unwrap(), Some(Reshaped { n: 3 }));
    }

    #[tokio::test]
    async fn secrets_are_scrubbed_from_everything_written() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("kri.db")).unwrap();
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
        let dump: Vec<String> = s
            .call("dump", |c| {
                let mut out = Vec::new();
                for sql in [
                    "SELECT error FROM runs",
                    "SELECT message FROM kri_values",
                    "SELECT value FROM state",
                ] {
                    let mut stmt = c.prepare(sql)?;
                    let rows = stmt.query_map([], |r| r.get::<_, Option<String>>(0))?;
                    for r in rows {
                        out.extend(r?);
                    }
                }
                Ok(out)
            })
            .await
            .unwrap();
        assert_eq!(dump.len(), 3, "{dump:?}");
        assert!(
            dump.iter()
                .all(|t| !t.contains("store-secret-123") && t.contains("[redacted]")),
            "{dump:?}"
        );
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
}
