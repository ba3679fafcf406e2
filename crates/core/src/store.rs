//! The embedded store: SQLite with versioned migrations and WAL. It keeps every run (one
//! transaction per run, so a crash mid-run leaves the last good values intact), every KRI value,
//! a small key/value state per connector for cursors and cached facts (each row with the version
//! of its shape), and the leases that keep two processes from running one connector at once.
//!
//! The file and a folder it creates are owner-only (0600 / 0700): the store holds incident data.
//! Every text written (errors, messages, state) goes through the secret scrubber first.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::KriError;
use crate::kri::{KriOutcome, serialize_value};
use crate::secret::{scrub, scrub_cow};

/// Migrations, in order. `PRAGMA user_version` records how many have run. Never edit one that
/// has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: runs, values, connector state.
    "CREATE TABLE runs (
        run_id       TEXT NOT NULL,
        connector    TEXT NOT NULL,
        module       TEXT NOT NULL,
        started_at   TEXT NOT NULL,
        finished_at  TEXT NOT NULL,
        status       TEXT NOT NULL,
        rows_written INTEGER NOT NULL,
        rows_skipped INTEGER NOT NULL,
        api_calls    INTEGER NOT NULL,
        error        TEXT,
        PRIMARY KEY (run_id, connector)
    );
    CREATE INDEX runs_started ON runs (started_at);
    CREATE TABLE kri_values (
        id          INTEGER PRIMARY KEY,
        run_id      TEXT NOT NULL,
        connector   TEXT NOT NULL,
        slug        TEXT NOT NULL,
        measured_at TEXT NOT NULL,
        value       REAL,
        unit        TEXT NOT NULL,
        status      TEXT NOT NULL,
        band        TEXT,
        message     TEXT
    );
    CREATE INDEX kri_values_slug ON kri_values (slug, measured_at);
    CREATE TABLE state (
        namespace  TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (namespace, key)
    );",
    // 2: API calls per rate-limit pool, for rolling-24 h budgets.
    "CREATE TABLE api_calls (
        namespace TEXT NOT NULL,
        pool      TEXT NOT NULL,
        at        TEXT NOT NULL
    );
    CREATE INDEX api_calls_pool ON api_calls (namespace, pool, at);",
    // 3: the shape version of each state row (rows written before are version 1), and leases:
    // one holder per connector at a time, kept alive by heartbeats.
    "ALTER TABLE state ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE leases (
        name         TEXT PRIMARY KEY,
        holder_id    TEXT NOT NULL,
        holder       TEXT NOT NULL,
        host         TEXT NOT NULL,
        pid          INTEGER NOT NULL,
        acquired_at  TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL
    );",
];

/// A store problem: what failed, where the file is, what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store {path}: {action} failed: {detail}")]
pub struct StoreError {
    pub path: String,
    pub action: &'static str,
    pub detail: String,
}

/// Status of one connector in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorStatus {
    Ok,
    Partial,
    Failed,
}

impl ConnectorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorStatus::Ok => "ok",
            ConnectorStatus::Partial => "partial",
            ConnectorStatus::Failed => "failed",
        }
    }
}

/// One connector's part of a run: the `connectors[]` item of `kri run --output json`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorReport {
    pub connector: String,
    pub module: String,
    pub status: ConnectorStatus,
    pub rows_written: u64,
    pub rows_skipped: u64,
    pub api_calls: u64,
    pub error: Option<String>,
    pub kris: Vec<KriOutcome>,
    #[serde(skip)]
    pub started_at: DateTime<Utc>,
    #[serde(skip)]
    pub finished_at: DateTime<Utc>,
}

/// A whole `kri run`: the object `kri run --output json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    #[serde(serialize_with = "ser_time")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "ser_time")]
    pub finished_at: DateTime<Utc>,
    pub connectors: Vec<ConnectorReport>,
}

/// A stored run of one connector, for `kri history`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub connector: String,
    pub module: String,
    pub started_at: String,
    pub finished_at: String,
    pub status: String,
    pub rows_written: u64,
    pub rows_skipped: u64,
    pub api_calls: u64,
    pub error: Option<String>,
}

/// A stored KRI value, for `kri values`.
#[derive(Debug, Clone, Serialize)]
pub struct ValueRow {
    pub slug: String,
    pub connector: String,
    pub run_id: String,
    pub measured_at: String,
    #[serde(serialize_with = "serialize_value")]
    pub value: Option<f64>,
    pub unit: String,
    pub status: String,
    pub band: Option<String>,
    pub message: Option<String>,
}

/// RFC 3339, UTC, seconds: sortable as text.
pub fn fmt_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn ser_time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&fmt_time(t))
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
        let err = |action, e: &dyn std::fmt::Display| StoreError {
            path: path.display().to_string(),
            action,
            detail: e.to_string(),
        };
        create_private(path).map_err(|e| err("creating it (check [store] path)", &e))?;
        let mut conn = Connection::open(path).map_err(|e| err("opening (check [store] path)", &e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| err("configuring", &e))?;
        use_wal(&conn).map_err(|e| err("switching to WAL", &e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| err("configuring", &e))?;
        migrate(&mut conn).map_err(|e| err("migrating the schema", &e))?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
        })
    }

    /// A private in-memory store (tests, `kri demo`).
    pub fn in_memory() -> Result<Store, StoreError> {
        let err = |e: rusqlite::Error| StoreError {
            path: ":memory:".into(),
            action: "opening",
            detail: e.to_string(),
        };
        let mut conn = Connection::open_in_memory().map_err(err)?;
        migrate(&mut conn).map_err(err)?;
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
            Ok(Err(e)) => Err(StoreError {
                path,
                action,
                detail: e.to_string(),
            }),
            Err(e) => Err(StoreError {
                path,
                action,
                detail: format!("store task died: {e}"),
            }),
        }
    }

    /// Write a whole run (every connector's row and every KRI outcome) in ONE transaction.
    pub async fn write_run(&self, run: &RunReport) -> Result<(), StoreError> {
        let mut run = run.clone();
        for c in &mut run.connectors {
            c.error = c.error.as_deref().map(scrub);
            for k in &mut c.kris {
                k.message = k.message.as_deref().map(scrub);
            }
        }
        self.call("writing the run", move |c| {
            let tx = c.transaction()?;
            for r in &run.connectors {
                tx.execute(
                    "INSERT INTO runs (run_id, connector, module, started_at, finished_at, status,
                                       rows_written, rows_skipped, api_calls, error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        run.run_id,
                        r.connector,
                        r.module,
                        fmt_time(&r.started_at),
                        fmt_time(&r.finished_at),
                        r.status.as_str(),
                        r.rows_written,
                        r.rows_skipped,
                        r.api_calls,
                        r.error
                    ],
                )?;
                for k in &r.kris {
                    tx.execute(
                        "INSERT INTO kri_values (run_id, connector, slug, measured_at, value, unit, status, band, message)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        params![
                            run.run_id,
                            r.connector,
                            k.slug,
                            fmt_time(&r.finished_at),
                            k.value,
                            k.unit,
                            k.status.as_str(),
                            k.band.map(|b| b.as_str()),
                            k.message
                        ],
                    )?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// The most recent connector runs, newest first.
    pub async fn history(&self, limit: u32, module: Option<String>) -> Result<Vec<RunRow>, StoreError> {
        self.call("reading run history", move |c| {
            let mut stmt = c.prepare(
                "SELECT run_id, connector, module, started_at, finished_at, status, rows_written,
                        rows_skipped, api_calls, error
                 FROM runs WHERE (?1 IS NULL OR module = ?1)
                 ORDER BY started_at DESC, rowid DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![module, limit], |r| {
                Ok(RunRow {
                    run_id: r.get(0)?,
                    connector: r.get(1)?,
                    module: r.get(2)?,
                    started_at: r.get(3)?,
                    finished_at: r.get(4)?,
                    status: r.get(5)?,
                    rows_written: r.get(6)?,
                    rows_skipped: r.get(7)?,
                    api_calls: r.get(8)?,
                    error: r.get(9)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Stored values, newest first, for one slug or all.
    pub async fn values(&self, slug: Option<String>, limit: u32) -> Result<Vec<ValueRow>, StoreError> {
        self.call("reading values", move |c| {
            let mut stmt = c.prepare(
                "SELECT slug, connector, run_id, measured_at, value, unit, status, band, message
                 FROM kri_values WHERE (?1 IS NULL OR slug = ?1)
                 ORDER BY measured_at DESC, id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![slug, limit], value_row)?;
            rows.collect()
        })
        .await
    }

    /// The newest value that is not a failure (the "last good value").
    pub async fn last_good(&self, slug: &str) -> Result<Option<ValueRow>, StoreError> {
        let slug = slug.to_owned();
        self.call("reading the last good value", move |c| {
            c.query_row(
                "SELECT slug, connector, run_id, measured_at, value, unit, status, band, message
                 FROM kri_values WHERE slug = ?1 AND value IS NOT NULL
                 ORDER BY measured_at DESC, id DESC LIMIT 1",
                params![slug],
                value_row,
            )
            .optional()
        })
        .await
    }

    /// A connector's slice of the state table.
    pub fn state(&self, namespace: &str) -> StateHandle {
        StateHandle {
            store: self.clone(),
            namespace: namespace.to_owned(),
        }
    }
}

fn value_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ValueRow> {
    Ok(ValueRow {
        slug: r.get(0)?,
        connector: r.get(1)?,
        run_id: r.get(2)?,
        measured_at: r.get(3)?,
        value: r.get(4)?,
        unit: r.get(5)?,
        status: r.get(6)?,
        band: r.get(7)?,
        message: r.get(8)?,
    })
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    if current > MIGRATIONS.len() {
        return Err(rusqlite::Error::ToSqlConversionFailure(
            format!(
                "the store has schema version {current} but this kri knows only {}: it was written by a newer kri",
                MIGRATIONS.len()
            )
            .into(),
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        // Another process may be migrating the same new store right now: take the write lock
        // first, then look again at what is already done.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if done as usize > i {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Switch to WAL. Two processes opening a new store at once race for the switch, and SQLite
/// answers "busy" at once rather than waiting: look again for a few seconds.
fn use_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// A value a connector keeps in its state. `VERSION` is the version of its stored shape: bump it
/// when the shape changes, and rows of any other version are dropped (and read again from the
/// API) instead of failing the run.
pub trait StateValue: Serialize + DeserializeOwned + Send + 'static {
    const VERSION: u32;
}

/// Cursors and cached facts of one connector: JSON values under string keys. A row that cannot
/// be read (damaged, or written in another shape) is logged with its key and dropped: it is read
/// again from the API, and it never fails a KRI it does not feed.
#[derive(Clone, Debug)]
pub struct StateHandle {
    store: Store,
    namespace: String,
}

impl StateHandle {
    pub async fn get<T: StateValue>(&self, key: &str) -> Result<Option<T>, KriError> {
        let (ns, k) = (self.namespace.clone(), key.to_owned());
        let row: Option<(String, u32)> = self
            .store
            .call("reading connector state", move |c| {
                c.query_row(
                    "SELECT value, version FROM state WHERE namespace = ?1 AND key = ?2",
                    params![ns, k],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
            })
            .await
            .map_err(|e| KriError::Store(e.to_string()))?;
        let Some((text, version)) = row else { return Ok(None) };
        match decode::<T>(&text, version) {
            Ok(v) => Ok(Some(v)),
            Err(why) => {
                self.drop_unreadable(key, &why).await?;
                Ok(None)
            }
        }
    }

    /// Write several keys in one transaction.
    pub async fn put_many<T: StateValue>(&self, now: DateTime<Utc>, entries: &[(String, T)]) -> Result<(), KriError> {
        let rows = entries
            .iter()
            .map(|(k, v)| encode(v).map(|j| (k.clone(), j)))
            .collect::<Result<_, _>>()?;
        self.write(now, rows, T::VERSION).await
    }

    pub async fn put<T: StateValue>(&self, now: DateTime<Utc>, key: &str, value: &T) -> Result<(), KriError> {
        self.write(now, vec![(key.to_owned(), encode(value)?)], T::VERSION)
            .await
    }

    async fn write(&self, now: DateTime<Utc>, rows: Vec<(String, String)>, version: u32) -> Result<(), KriError> {
        let ns = self.namespace.clone();
        let at = fmt_time(&now);
        self.store
            .call("writing connector state", move |c| {
                let tx = c.transaction()?;
                for (k, v) in &rows {
                    tx.execute(
                        "INSERT INTO state (namespace, key, value, updated_at, version) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,
                             updated_at = excluded.updated_at, version = excluded.version",
                        params![ns, k, v, at, version],
                    )?;
                }
                tx.commit()
            })
            .await
            .map_err(|e| KriError::Store(e.to_string()))
    }

    /// Every readable key under `prefix`, in key order (unreadable rows are dropped).
    pub async fn scan<T: StateValue>(&self, prefix: &str) -> Result<Vec<(String, T)>, KriError> {
        let (ns, like) = (self.namespace.clone(), like_prefix(prefix));
        let rows: Vec<(String, String, u32)> = self
            .store
            .call("scanning connector state", move |c| {
                let mut stmt = c.prepare(
                    "SELECT key, value, version FROM state WHERE namespace = ?1 AND key LIKE ?2 ESCAPE '\\'
                     ORDER BY key",
                )?;
                let rows = stmt.query_map(params![ns, like], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect()
            })
            .await
            .map_err(|e| KriError::Store(e.to_string()))?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, text, version) in rows {
            match decode::<T>(&text, version) {
                Ok(v) => out.push((k, v)),
                Err(why) => self.drop_unreadable(&k, &why).await?,
            }
        }
        Ok(out)
    }

    /// Delete one key.
    pub async fn delete(&self, key: &str) -> Result<(), KriError> {
        let (ns, k) = (self.namespace.clone(), key.to_owned());
        self.store
            .call("deleting connector state", move |c| {
                c.execute("DELETE FROM state WHERE namespace = ?1 AND key = ?2", params![ns, k])
                    .map(|_| ())
            })
            .await
            .map_err(|e| KriError::Store(e.to_string()))
    }

    /// Log and delete a row that cannot be read, so it is read again from the API.
    pub async fn drop_unreadable(&self, key: &str, why: &str) -> Result<(), KriError> {
        tracing::warn!(
            namespace = %self.namespace,
            key,
            "stored state `{key}` could not be read ({why}); dropped, it will be read again from the API"
        );
        self.delete(key).await
    }

    /// Delete every key under `prefix` (e.g. facts that aged out).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, KriError> {
        let (ns, like) = (self.namespace.clone(), like_prefix(prefix));
        self.store
            .call("pruning connector state", move |c| {
                c.execute(
                    "DELETE FROM state WHERE namespace = ?1 AND key LIKE ?2 ESCAPE '\\'",
                    params![ns, like],
                )
                .map(|n| n as u64)
            })
            .await
            .map_err(|e| KriError::Store(e.to_string()))
    }
}

fn like_prefix(prefix: &str) -> String {
    format!(
        "{}%",
        prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
    )
}

/// JSON of a state value, with secrets scrubbed.
fn encode<T: StateValue>(value: &T) -> Result<String, KriError> {
    serde_json::to_string(value)
        .map(|j| scrub_cow(&j).into_owned())
        .map_err(|e| KriError::Store(format!("cannot encode state: {e}")))
}

fn decode<T: StateValue>(text: &str, version: u32) -> Result<T, String> {
    if version != T::VERSION {
        return Err(format!(
            "written in shape version {version}, this kri reads version {}",
            T::VERSION
        ));
    }
    serde_json::from_str(text).map_err(|e| format!("damaged: {e}"))
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
    use crate::kri::{Band, KriStatus};
    use chrono::TimeZone;

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
        assert_eq!(s.schema_version().await.unwrap(), MIGRATIONS.len() as u32);
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().await.unwrap(), MIGRATIONS.len() as u32);
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
