//! The schema: migrations, in order, one list per engine with the same tables, columns and
//! version numbers. SQLite records the version in `PRAGMA user_version`, PostgreSQL in the table
//! `kri_schema`.

use rusqlite::Connection;

use super::StoreFailure;

/// Fill the read model of migration 6 from the stored history, in SQL both engines run as it is
/// (window functions, `UPDATE … FROM`). Also [`super::Store::rebuild_read_model`].
macro_rules! fill_read_model {
    () => {
        "
    DELETE FROM kri_latest;
    DELETE FROM connector_latest;
    DELETE FROM run_counts;
    DELETE FROM kri_daily;
    UPDATE kri_values SET previous_value = p.prev FROM (
        SELECT id, LAG(last_good) OVER (PARTITION BY tenant, slug ORDER BY measured_at, id) AS prev
        FROM (SELECT id, tenant, slug, measured_at,
                     FIRST_VALUE(value) OVER (PARTITION BY tenant, slug, grp ORDER BY measured_at, id) AS last_good
              FROM (SELECT id, tenant, slug, measured_at, value,
                           COUNT(value) OVER (PARTITION BY tenant, slug ORDER BY measured_at, id
                                              ROWS UNBOUNDED PRECEDING) AS grp
                    FROM kri_values) counted) filled) p
    WHERE kri_values.id = p.id AND p.prev IS NOT NULL;
    INSERT INTO kri_latest (tenant, slug, newest_id, newest_at, newest_status, newest_band)
        SELECT tenant, slug, id, measured_at, status, band FROM (
            SELECT tenant, slug, id, measured_at, status, band,
                   ROW_NUMBER() OVER (PARTITION BY tenant, slug ORDER BY measured_at DESC, id DESC) AS n
            FROM kri_values) ranked
        WHERE n = 1;
    UPDATE kri_latest SET good_id = (
        SELECT k.id FROM kri_values k
        WHERE k.tenant = kri_latest.tenant AND k.slug = kri_latest.slug AND k.value IS NOT NULL
        ORDER BY k.measured_at DESC, k.id DESC LIMIT 1);
    UPDATE kri_latest SET good_band = (SELECT k.band FROM kri_values k WHERE k.id = kri_latest.good_id)
        WHERE good_id IS NOT NULL;
    UPDATE kri_latest SET band_since = (
        SELECT MIN(k.measured_at) FROM kri_values k
        WHERE k.tenant = kri_latest.tenant AND k.slug = kri_latest.slug AND k.value IS NOT NULL
          AND k.measured_at > COALESCE((
              SELECT MAX(w.measured_at) FROM kri_values w
              WHERE w.tenant = kri_latest.tenant AND w.slug = kri_latest.slug AND w.value IS NOT NULL
                AND COALESCE(w.band, '') <> COALESCE(kri_latest.good_band, '')), ''))
        WHERE good_id IS NOT NULL;
    INSERT INTO connector_latest (tenant, module, connector, last_run_id, last_started_at)
        SELECT tenant, module, connector, run_id, started_at FROM (
            SELECT tenant, module, connector, run_id, started_at,
                   ROW_NUMBER() OVER (PARTITION BY tenant, module ORDER BY started_at DESC, rowid DESC) AS n
            FROM runs) ranked
        WHERE n = 1;
    UPDATE connector_latest SET last_success_at = (
        SELECT MAX(r.finished_at) FROM runs r
        WHERE r.tenant = connector_latest.tenant AND r.module = connector_latest.module AND r.status = 'ok');
    INSERT INTO run_counts (tenant, module, status, runs)
        SELECT tenant, module, status, COUNT(*) FROM runs GROUP BY tenant, module, status;
    INSERT INTO kri_daily (tenant, slug, day, low, low_at, high, high_at, band, last_at)
        SELECT tenant, slug, day, low, low_at, high, high_at, band, last_at FROM (
            SELECT tenant, slug, substr(measured_at, 1, 10) AS day,
                   FIRST_VALUE(value) OVER lo AS low, FIRST_VALUE(measured_at) OVER lo AS low_at,
                   FIRST_VALUE(value) OVER hi AS high, FIRST_VALUE(measured_at) OVER hi AS high_at,
                   FIRST_VALUE(band) OVER la AS band, FIRST_VALUE(measured_at) OVER la AS last_at,
                   ROW_NUMBER() OVER la AS n
            FROM kri_values WHERE value IS NOT NULL
            WINDOW lo AS (PARTITION BY tenant, slug, substr(measured_at, 1, 10) ORDER BY value, measured_at),
                   hi AS (PARTITION BY tenant, slug, substr(measured_at, 1, 10) ORDER BY value DESC, measured_at),
                   la AS (PARTITION BY tenant, slug, substr(measured_at, 1, 10) ORDER BY measured_at DESC, id DESC)
        ) days
        WHERE n = 1;
"
    };
}
/// [`fill_read_model!`] as a constant, for [`super::Store::rebuild_read_model`].
pub(super) const FILL_READ_MODEL: &str = fill_read_model!();

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
    // 4: tenants. Every run and value belongs to one; rows from before are the default
    // tenant's. The key of `runs` gains the tenant, and SQLite cannot change a primary key in
    // place: build the new table, copy in rowid order (history orders by it), swap.
    "CREATE TABLE runs_new (
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
        tenant       TEXT NOT NULL DEFAULT 'default',
        PRIMARY KEY (run_id, tenant, connector)
    );
    INSERT INTO runs_new (run_id, connector, module, started_at, finished_at, status, rows_written,
                          rows_skipped, api_calls, error)
        SELECT run_id, connector, module, started_at, finished_at, status, rows_written,
               rows_skipped, api_calls, error
        FROM runs ORDER BY rowid;
    DROP TABLE runs;
    ALTER TABLE runs_new RENAME TO runs;
    CREATE INDEX runs_started ON runs (started_at);
    CREATE INDEX runs_tenant_module ON runs (tenant, module, started_at);
    ALTER TABLE kri_values ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
    CREATE INDEX kri_values_tenant_slug ON kri_values (tenant, slug, measured_at);",
    // 5: the newest slot each (tenant, connector) has run, written in the run's transaction:
    // workers sharing a store make each slot's run once.
    "CREATE TABLE slots (
        name TEXT PRIMARY KEY,
        slot TEXT NOT NULL
    );",
    // 6: the read model. "Now" (the newest value and newest good value of each tenant's KRI,
    // each connector's last run and last success, runs counted by status) is kept in small
    // tables written in each run's transaction, and each value keeps the previous good value it
    // was compared with, so no read walks the history. Indexes for the value listing and
    // pruning by age; a run's values are
    // found by its tenant and time (a value is measured when its connector's run finished), so
    // no index on run ids, which are random, makes every write and every prune touch pages all
    // over it; nor on (tenant, module, started_at): (tenant, started_at) serves. The read model
    // is filled once from the history there is.
    concat!(
        "ALTER TABLE kri_values ADD COLUMN previous_value REAL;
    CREATE INDEX kri_values_measured ON kri_values (measured_at);
    CREATE INDEX kri_values_tenant_at ON kri_values (tenant, measured_at);
    CREATE INDEX runs_tenant_started ON runs (tenant, started_at);
    DROP INDEX runs_tenant_module;
    CREATE TABLE kri_latest (
        tenant        TEXT NOT NULL,
        slug          TEXT NOT NULL,
        newest_id     INTEGER NOT NULL,
        newest_at     TEXT NOT NULL,
        newest_status TEXT NOT NULL,
        newest_band   TEXT,
        good_id       INTEGER,
        good_band     TEXT,
        band_since    TEXT,
        PRIMARY KEY (tenant, slug)
    ) WITHOUT ROWID;
    CREATE TABLE connector_latest (
        tenant          TEXT NOT NULL,
        module          TEXT NOT NULL,
        connector       TEXT NOT NULL,
        last_run_id     TEXT NOT NULL,
        last_started_at TEXT NOT NULL,
        last_success_at TEXT,
        PRIMARY KEY (tenant, module)
    ) WITHOUT ROWID;
    CREATE TABLE run_counts (
        tenant TEXT NOT NULL,
        module TEXT NOT NULL,
        status TEXT NOT NULL,
        runs   INTEGER NOT NULL,
        PRIMARY KEY (tenant, module, status)
    ) WITHOUT ROWID;
    CREATE TABLE kri_daily (
        tenant  TEXT NOT NULL,
        slug    TEXT NOT NULL,
        day     TEXT NOT NULL,
        low     REAL NOT NULL,
        low_at  TEXT NOT NULL,
        high    REAL NOT NULL,
        high_at TEXT NOT NULL,
        band    TEXT,
        last_at TEXT NOT NULL,
        PRIMARY KEY (tenant, slug, day)
    ) WITHOUT ROWID;",
        fill_read_model!()
    ),
    // 7: the thresholds each value was banded with: what is shown and exported with a value
    // (kri_threshold) agrees with its band, whatever the config says now.
    "ALTER TABLE kri_values ADD COLUMN amber REAL;
    ALTER TABLE kri_values ADD COLUMN red REAL;",
    // 8: the outbox: the events each run produces, written in the run's transaction, in order
    // (`seq`), each with a stable id; sinks deliver from here.
    "CREATE TABLE outbox (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        id      TEXT NOT NULL UNIQUE,
        tenant  TEXT NOT NULL,
        type    TEXT NOT NULL,
        subject TEXT NOT NULL,
        time    TEXT NOT NULL,
        run_id  TEXT NOT NULL,
        body    TEXT NOT NULL
    );
    CREATE INDEX outbox_time ON outbox (time);",
    // 9: each sink's progress through the outbox (delivered up to `done_to`, the current
    // failure's attempts and next try) and the events it gave up on.
    "CREATE TABLE sink_progress (
        sink       TEXT PRIMARY KEY,
        done_to    INTEGER NOT NULL,
        delivered  INTEGER NOT NULL,
        attempts   INTEGER NOT NULL,
        next_at    TEXT,
        last_error TEXT
    );
    CREATE TABLE sink_dead (
        sink  TEXT NOT NULL,
        seq   INTEGER NOT NULL,
        error TEXT NOT NULL,
        at    TEXT NOT NULL,
        PRIMARY KEY (sink, seq)
    );",
    // 10: per sink and KRI, what a sink with `for` or `repeat_every` last saw and sent: the band
    // the KRI is in and for how many runs, the band last notified and when.
    "CREATE TABLE sink_kri (
        sink    TEXT NOT NULL,
        tenant  TEXT NOT NULL,
        slug    TEXT NOT NULL,
        band    TEXT NOT NULL,
        runs    INTEGER NOT NULL,
        sent    TEXT,
        sent_at TEXT,
        PRIMARY KEY (sink, tenant, slug)
    );",
    // 11: acknowledgements of a KRI's amber or red band, kept with the history: who, why, when,
    // until when, and when it was cleared by hand (it also ends when the band changes).
    "CREATE TABLE kri_acks (
        tenant     TEXT NOT NULL,
        slug       TEXT NOT NULL,
        at         TEXT NOT NULL,
        band       TEXT NOT NULL,
        by_name    TEXT,
        note       TEXT NOT NULL,
        until      TEXT,
        cleared_at TEXT,
        PRIMARY KEY (tenant, slug, at)
    );",
];

/// Run the SQLite migrations up to `version` (all of them, except in tests), each in its own
/// transaction. A store of a newer version is refused.
pub(super) fn migrate(conn: &mut Connection, version: usize) -> Result<(), StoreFailure> {
    let current = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?;
    refuse_newer(current)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().take(version).skip(current as usize) {
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

fn refuse_newer(found: i64) -> Result<(), StoreFailure> {
    if found > MIGRATIONS.len() as i64 || found < 0 {
        return Err(StoreFailure::Newer {
            found,
            known: MIGRATIONS.len(),
        });
    }
    Ok(())
}

/// The PostgreSQL migrations: the same tables and columns as [`MIGRATIONS`], one for one.
/// Times stay RFC 3339 text, so both engines compare and sort them alike; every text column
/// compares byte by byte (`COLLATE "C"`), as SQLite does, whatever the database's locale.
/// `runs` has an explicit `rowid`, SQLite's implicit one, so `ORDER BY … rowid` reads the same.
pub(super) const PG_MIGRATIONS: &[&str] = &[
    // 1: runs, values, connector state.
    r#"CREATE TABLE runs (
        rowid        BIGSERIAL,
        run_id       TEXT COLLATE "C" NOT NULL,
        connector    TEXT COLLATE "C" NOT NULL,
        module       TEXT COLLATE "C" NOT NULL,
        started_at   TEXT COLLATE "C" NOT NULL,
        finished_at  TEXT COLLATE "C" NOT NULL,
        status       TEXT COLLATE "C" NOT NULL,
        rows_written BIGINT NOT NULL,
        rows_skipped BIGINT NOT NULL,
        api_calls    BIGINT NOT NULL,
        error        TEXT COLLATE "C",
        PRIMARY KEY (run_id, connector)
    );
    CREATE INDEX runs_started ON runs (started_at);
    CREATE TABLE kri_values (
        id          BIGSERIAL PRIMARY KEY,
        run_id      TEXT COLLATE "C" NOT NULL,
        connector   TEXT COLLATE "C" NOT NULL,
        slug        TEXT COLLATE "C" NOT NULL,
        measured_at TEXT COLLATE "C" NOT NULL,
        value       DOUBLE PRECISION,
        unit        TEXT COLLATE "C" NOT NULL,
        status      TEXT COLLATE "C" NOT NULL,
        band        TEXT COLLATE "C",
        message     TEXT COLLATE "C"
    );
    CREATE INDEX kri_values_slug ON kri_values (slug, measured_at);
    CREATE TABLE state (
        namespace  TEXT COLLATE "C" NOT NULL,
        key        TEXT COLLATE "C" NOT NULL,
        value      TEXT COLLATE "C" NOT NULL,
        updated_at TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (namespace, key)
    );"#,
    // 2: API calls per rate-limit pool, for rolling-24 h budgets.
    r#"CREATE TABLE api_calls (
        namespace TEXT COLLATE "C" NOT NULL,
        pool      TEXT COLLATE "C" NOT NULL,
        at        TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX api_calls_pool ON api_calls (namespace, pool, at);"#,
    // 3: the shape version of each state row, and leases.
    r#"ALTER TABLE state ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
    CREATE TABLE leases (
        name         TEXT COLLATE "C" PRIMARY KEY,
        holder_id    TEXT COLLATE "C" NOT NULL,
        holder       TEXT COLLATE "C" NOT NULL,
        host         TEXT COLLATE "C" NOT NULL,
        pid          BIGINT NOT NULL,
        acquired_at  TEXT COLLATE "C" NOT NULL,
        heartbeat_at TEXT COLLATE "C" NOT NULL
    );"#,
    // 4: tenants; rows from before are the default tenant's.
    r#"ALTER TABLE runs ADD COLUMN tenant TEXT COLLATE "C" NOT NULL DEFAULT 'default';
    ALTER TABLE runs DROP CONSTRAINT runs_pkey;
    ALTER TABLE runs ADD PRIMARY KEY (run_id, tenant, connector);
    CREATE INDEX runs_tenant_module ON runs (tenant, module, started_at);
    ALTER TABLE kri_values ADD COLUMN tenant TEXT COLLATE "C" NOT NULL DEFAULT 'default';
    CREATE INDEX kri_values_tenant_slug ON kri_values (tenant, slug, measured_at);"#,
    // 5: the newest slot each (tenant, connector) has run.
    r#"CREATE TABLE slots (
        name TEXT COLLATE "C" PRIMARY KEY,
        slot TEXT COLLATE "C" NOT NULL
    );"#,
    // 6: the read model, as in SQLite. The indexes end with `id`, which SQLite's carry
    // implicitly (the rowid), so a listing ordered by (measured_at, id) needs no sort.
    concat!(
        r#"ALTER TABLE kri_values ADD COLUMN previous_value DOUBLE PRECISION;
    CREATE INDEX kri_values_measured ON kri_values (measured_at, id);
    CREATE INDEX kri_values_tenant_at ON kri_values (tenant, measured_at, id);
    CREATE INDEX kri_values_tenant_slug_id ON kri_values (tenant, slug, measured_at, id) INCLUDE (value, band);
    DROP INDEX kri_values_tenant_slug;
    CREATE INDEX kri_values_slug_id ON kri_values (slug, measured_at, id);
    DROP INDEX kri_values_slug;
    CREATE INDEX runs_tenant_started ON runs (tenant, started_at);
    DROP INDEX runs_tenant_module;
    CREATE TABLE kri_latest (
        tenant        TEXT COLLATE "C" NOT NULL,
        slug          TEXT COLLATE "C" NOT NULL,
        newest_id     BIGINT NOT NULL,
        newest_at     TEXT COLLATE "C" NOT NULL,
        newest_status TEXT COLLATE "C" NOT NULL,
        newest_band   TEXT COLLATE "C",
        good_id       BIGINT,
        good_band  TEXT COLLATE "C",
        band_since TEXT COLLATE "C",
        PRIMARY KEY (tenant, slug)
    );
    CREATE TABLE connector_latest (
        tenant          TEXT COLLATE "C" NOT NULL,
        module          TEXT COLLATE "C" NOT NULL,
        connector       TEXT COLLATE "C" NOT NULL,
        last_run_id     TEXT COLLATE "C" NOT NULL,
        last_started_at TEXT COLLATE "C" NOT NULL,
        last_success_at TEXT COLLATE "C",
        PRIMARY KEY (tenant, module)
    );
    CREATE TABLE run_counts (
        tenant TEXT COLLATE "C" NOT NULL,
        module TEXT COLLATE "C" NOT NULL,
        status TEXT COLLATE "C" NOT NULL,
        runs   BIGINT NOT NULL,
        PRIMARY KEY (tenant, module, status)
    );
    CREATE TABLE kri_daily (
        tenant  TEXT COLLATE "C" NOT NULL,
        slug    TEXT COLLATE "C" NOT NULL,
        day     TEXT COLLATE "C" NOT NULL,
        low     DOUBLE PRECISION NOT NULL,
        low_at  TEXT COLLATE "C" NOT NULL,
        high    DOUBLE PRECISION NOT NULL,
        high_at TEXT COLLATE "C" NOT NULL,
        band    TEXT COLLATE "C",
        last_at TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (tenant, slug, day)
    );"#,
        fill_read_model!(),
        "ANALYZE kri_values; ANALYZE runs;"
    ),
    // 7: the thresholds each value was banded with, as in SQLite.
    "ALTER TABLE kri_values ADD COLUMN amber DOUBLE PRECISION, ADD COLUMN red DOUBLE PRECISION;",
    // 8: the outbox, as in SQLite.
    r#"CREATE TABLE outbox (
        seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id      TEXT COLLATE "C" NOT NULL UNIQUE,
        tenant  TEXT COLLATE "C" NOT NULL,
        type    TEXT COLLATE "C" NOT NULL,
        subject TEXT COLLATE "C" NOT NULL,
        time    TEXT COLLATE "C" NOT NULL,
        run_id  TEXT COLLATE "C" NOT NULL,
        body    TEXT NOT NULL
    );
    CREATE INDEX outbox_time ON outbox (time);"#,
    // 9: sink progress and dead letters, as in SQLite.
    r#"CREATE TABLE sink_progress (
        sink       TEXT COLLATE "C" PRIMARY KEY,
        done_to    BIGINT NOT NULL,
        delivered  BIGINT NOT NULL,
        attempts   BIGINT NOT NULL,
        next_at    TEXT COLLATE "C",
        last_error TEXT
    );
    CREATE TABLE sink_dead (
        sink  TEXT COLLATE "C" NOT NULL,
        seq   BIGINT NOT NULL,
        error TEXT NOT NULL,
        at    TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (sink, seq)
    );"#,
    // 10: what a sink with `for` or `repeat_every` saw and sent, per KRI, as in SQLite.
    r#"CREATE TABLE sink_kri (
        sink    TEXT COLLATE "C" NOT NULL,
        tenant  TEXT COLLATE "C" NOT NULL,
        slug    TEXT COLLATE "C" NOT NULL,
        band    TEXT COLLATE "C" NOT NULL,
        runs    BIGINT NOT NULL,
        sent    TEXT COLLATE "C",
        sent_at TEXT COLLATE "C",
        PRIMARY KEY (sink, tenant, slug)
    );"#,
    // 11: acknowledgements, as in SQLite.
    r#"CREATE TABLE kri_acks (
        tenant     TEXT COLLATE "C" NOT NULL,
        slug       TEXT COLLATE "C" NOT NULL,
        at         TEXT COLLATE "C" NOT NULL,
        band       TEXT COLLATE "C" NOT NULL,
        by_name    TEXT COLLATE "C",
        note       TEXT COLLATE "C" NOT NULL,
        until      TEXT COLLATE "C",
        cleared_at TEXT COLLATE "C",
        PRIMARY KEY (tenant, slug, at)
    );"#,
];

/// The key of the advisory lock under which a PostgreSQL store is migrated ("kri_sche").
const MIGRATION_LOCK: i64 = 0x6b72_695f_7363_6865;

/// Run the PostgreSQL migrations up to `version` in ONE transaction, under an advisory lock:
/// two processes starting together on a new database migrate it once, the second waiting for
/// the first and then finding nothing left to do. A store of a newer version is refused.
pub(super) async fn migrate_pg(client: &mut deadpool_postgres::Client, version: usize) -> Result<(), StoreFailure> {
    const KNOWN: usize = PG_MIGRATIONS.len();
    // One list per engine, one version number for both.
    const _: () = assert!(KNOWN == MIGRATIONS.len());
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS kri_schema (version INT NOT NULL)")
        .await?;
    let current = match tx.query_opt("SELECT version FROM kri_schema", &[]).await? {
        Some(row) => Some(i64::from(row.try_get::<_, i32>(0)?)),
        None => None,
    };
    refuse_newer(current.unwrap_or(0))?;
    let done = current.unwrap_or(0) as usize;
    if done >= version {
        return Ok(());
    }
    for sql in PG_MIGRATIONS.iter().take(version).skip(done) {
        tx.batch_execute(sql).await?;
    }
    let version = version as i32;
    if current.is_some() {
        tx.execute("UPDATE kri_schema SET version = $1", &[&version]).await?;
    } else {
        tx.execute("INSERT INTO kri_schema (version) VALUES ($1)", &[&version])
            .await?;
    }
    tx.commit().await?;
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
