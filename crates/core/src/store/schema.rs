//! The schema: migrations, in order, recorded in `PRAGMA user_version`.

use rusqlite::Connection;

/// Migrations, in order. `PRAGMA user_version` records how many have run. Never edit one that
/// has shipped: append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
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

pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
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
pub(super) fn use_wal(conn: &Connection) -> rusqlite::Result<()> {
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
