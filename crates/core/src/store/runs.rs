//! Runs: written one run per transaction, together with the read model of "now" (the newest
//! value and newest good value of each tenant's KRI, each connector's last run and last
//! success, runs counted by status); read back for `kri history`, a service's status and
//! metrics. No read here walks the history: "now" comes from the read model, and a listing
//! reads an index range of at most its limit.

use super::sql::{Filter, Row, Statement, vals};
use super::values::V_COLUMNS;
use super::{Store, StoreError, StoreFailure, fmt_time, schema};
use crate::report::{RunReport, RunRow};
use crate::secret::scrub;

/// The columns [`run_row`] reads.
const RUN_COLUMNS: &str = "tenant, run_id, connector, module, started_at, finished_at, status, rows_written, \
                           rows_skipped, api_calls, error";

/// A value, with the previous good value of its tenant's KRI (from the read model, before this
/// value updates it).
const INSERT_VALUE: &str = "INSERT INTO kri_values (tenant, run_id, connector, slug, measured_at, value, unit, status,
                                                    band, message, previous_value, amber, red)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
             (SELECT g.value FROM kri_latest l JOIN kri_values g ON g.id = l.good_id
              WHERE l.tenant = ?1 AND l.slug = ?4), ?11, ?12)";

/// The read model of one KRI after the value just inserted: it becomes the newest (unless a
/// newer one is stored), the newest good one when it has a value, and the band's start moves
/// when its band differs from the last good band.
const UPDATE_KRI_LATEST: &str =
    "INSERT INTO kri_latest (tenant, slug, newest_id, newest_at, newest_status, newest_band, good_id, good_band,
                             band_since)
     SELECT v.tenant, v.slug, v.id, v.measured_at, v.status, v.band,
            CASE WHEN v.value IS NULL THEN NULL ELSE v.id END,
            CASE WHEN v.value IS NULL THEN NULL ELSE v.band END,
            CASE WHEN v.value IS NULL THEN NULL ELSE v.measured_at END
     FROM kri_values v
     WHERE v.id = (SELECT MAX(w.id) FROM kri_values w
                   WHERE w.tenant = ?2 AND w.slug = ?4 AND w.measured_at = ?5 AND w.run_id = ?1
                     AND w.connector = ?3)
     ON CONFLICT (tenant, slug) DO UPDATE SET
         newest_id = excluded.newest_id,
         newest_at = excluded.newest_at,
         newest_status = excluded.newest_status,
         newest_band = excluded.newest_band,
         good_id = COALESCE(excluded.good_id, kri_latest.good_id),
         good_band = CASE WHEN excluded.good_id IS NULL THEN kri_latest.good_band ELSE excluded.good_band END,
         band_since = CASE
             WHEN excluded.good_id IS NULL THEN kri_latest.band_since
             WHEN kri_latest.good_id IS NOT NULL
                  AND COALESCE(kri_latest.good_band, '') = COALESCE(excluded.good_band, '')
                 THEN kri_latest.band_since
             ELSE excluded.band_since END
     WHERE excluded.newest_at >= kri_latest.newest_at";

/// The read model of one connector after its run: the last run (unless a later one is stored)
/// and the last success.
const UPDATE_CONNECTOR_LATEST: &str =
    "INSERT INTO connector_latest (tenant, module, connector, last_run_id, last_started_at,
                                   last_success_at)
     VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN CAST(?6 AS TEXT) = 'ok' THEN CAST(?7 AS TEXT) END)
     ON CONFLICT (tenant, module) DO UPDATE SET
         connector = CASE WHEN excluded.last_started_at >= connector_latest.last_started_at
                          THEN excluded.connector ELSE connector_latest.connector END,
         last_run_id = CASE WHEN excluded.last_started_at >= connector_latest.last_started_at
                            THEN excluded.last_run_id ELSE connector_latest.last_run_id END,
         last_started_at = CASE WHEN excluded.last_started_at >= connector_latest.last_started_at
                                THEN excluded.last_started_at ELSE connector_latest.last_started_at END,
         last_success_at = CASE WHEN excluded.last_success_at > COALESCE(connector_latest.last_success_at, '')
                                THEN excluded.last_success_at ELSE connector_latest.last_success_at END";

/// A good value in its day's rollup: the day's lowest and highest value and the newest band,
/// for charts over ranges longer than the raw points they draw.
const ROLL_UP_DAY: &str = "INSERT INTO kri_daily (tenant, slug, day, low, low_at, high, high_at, band, last_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?5, ?6, ?5)
     ON CONFLICT (tenant, slug, day) DO UPDATE SET
         low_at = CASE WHEN excluded.low < kri_daily.low THEN excluded.low_at ELSE kri_daily.low_at END,
         low = CASE WHEN excluded.low < kri_daily.low THEN excluded.low ELSE kri_daily.low END,
         high_at = CASE WHEN excluded.high > kri_daily.high THEN excluded.high_at ELSE kri_daily.high_at END,
         high = CASE WHEN excluded.high > kri_daily.high THEN excluded.high ELSE kri_daily.high END,
         band = CASE WHEN excluded.last_at >= kri_daily.last_at THEN excluded.band ELSE kri_daily.band END,
         last_at = CASE WHEN excluded.last_at >= kri_daily.last_at THEN excluded.last_at ELSE kri_daily.last_at END";

const COUNT_RUN: &str = "INSERT INTO run_counts (tenant, module, status, runs) VALUES (?1, ?2, ?3, 1)
     ON CONFLICT (tenant, module, status) DO UPDATE SET runs = run_counts.runs + 1";

impl Store {
    /// Write a whole run (every connector's row and every KRI outcome) in ONE transaction, each
    /// row as its connector report's tenant's.
    pub async fn write_run(&self, run: &RunReport) -> Result<(), StoreError> {
        self.write_run_marked(run, &[]).await
    }

    /// [`Store::write_run`], and in the same transaction mark each `(name, slot)`: the slot of
    /// the (tenant, connector) `name` is run (see [`Store::slot_done`]). A mark never moves back.
    /// The read model is updated in the same transaction.
    pub async fn write_run_marked(&self, run: &RunReport, marks: &[(String, String)]) -> Result<(), StoreError> {
        // The run's events, from the store as it is before the run (one writer per tenant and
        // connector: its lease), written in the same transaction as the run.
        let events = self.events_of(run).await?;
        let mut statements: Vec<Statement> = Vec::new();
        for (name, slot) in marks {
            statements.push((
                "INSERT INTO slots (name, slot) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET slot = excluded.slot WHERE excluded.slot > slots.slot",
                vals![name, slot],
            ));
        }
        for r in &run.connectors {
            statements.push((
                "INSERT INTO runs (tenant, run_id, connector, module, started_at, finished_at, status,
                                   rows_written, rows_skipped, api_calls, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                vals![
                    &r.tenant,
                    &run.run_id,
                    &r.connector,
                    &r.module,
                    fmt_time(&r.started_at),
                    fmt_time(&r.finished_at),
                    r.status.as_str(),
                    r.rows_written,
                    r.rows_skipped,
                    r.api_calls,
                    r.error.as_deref().map(scrub)
                ],
            ));
            statements.push((
                UPDATE_CONNECTOR_LATEST,
                vals![
                    &r.tenant,
                    &r.module,
                    &r.connector,
                    &run.run_id,
                    fmt_time(&r.started_at),
                    r.status.as_str(),
                    fmt_time(&r.finished_at)
                ],
            ));
            statements.push((COUNT_RUN, vals![&r.tenant, &r.module, r.status.as_str()]));
            for k in &r.kris {
                statements.push((
                    INSERT_VALUE,
                    vals![
                        &r.tenant,
                        &run.run_id,
                        &r.connector,
                        k.slug,
                        fmt_time(&r.finished_at),
                        k.value,
                        k.unit,
                        k.status.as_str(),
                        k.band.map(|b| b.as_str()),
                        k.message.as_deref().map(scrub),
                        k.thresholds.map(|t| t.amber),
                        k.thresholds.map(|t| t.red)
                    ],
                ));
                if let Some(v) = k.value {
                    let at = fmt_time(&r.finished_at);
                    statements.push((
                        ROLL_UP_DAY,
                        vals![
                            &r.tenant,
                            k.slug,
                            at[..10].to_owned(),
                            v,
                            at,
                            k.band.map(|b| b.as_str())
                        ],
                    ));
                }
                statements.push((
                    UPDATE_KRI_LATEST,
                    vals![&run.run_id, &r.tenant, &r.connector, k.slug, fmt_time(&r.finished_at)],
                ));
            }
        }
        statements.extend(self.outbox_statements(&events));
        self.transaction("writing the run", statements).await.map(|_| ())
    }

    /// Fill the read model again from the stored history, in one transaction (what the
    /// migration that made it did once). For a store whose rows were written by other means
    /// than [`Store::write_run`] (a bulk import).
    pub async fn rebuild_read_model(&self) -> Result<(), StoreError> {
        self.batch("rebuilding the read model", schema::FILL_READ_MODEL).await
    }

    /// The newest slot `name` (a (tenant, connector), see [`crate::store::namespace`]) has run.
    pub async fn slot_done(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.query_opt(
            "reading a slot mark",
            "SELECT slot FROM slots WHERE name = ?1",
            vals![name],
            |r| r.text(0),
        )
        .await
    }

    /// The most recent connector runs, newest first.
    pub async fn history(&self, limit: u32, module: Option<String>) -> Result<Vec<RunRow>, StoreError> {
        let (sql, params) = self.history_query(limit, module);
        self.query_map("reading run history", &sql, params, run_row).await
    }

    pub(crate) fn history_query(&self, limit: u32, module: Option<String>) -> (String, Vec<super::sql::Val>) {
        let mut f = Filter::default();
        f.eq("tenant", self.tenant_filter()).eq("module", module);
        let where_ = f.sql();
        let limit = f.param(limit);
        (
            format!("SELECT {RUN_COLUMNS} FROM runs{where_} ORDER BY started_at DESC, rowid DESC LIMIT {limit}"),
            f.params,
        )
    }

    /// The connector rows of the runs whose id starts with `prefix` (a whole id, or enough of its
    /// start to be unique; letters in any case: kri's run ids are lower case), oldest first.
    pub async fn run_rows(&self, prefix: &str) -> Result<Vec<RunRow>, StoreError> {
        // A range of the primary key, not a LIKE: one index seek whatever the number of runs.
        // `%` and `_` are dropped, as they always were.
        let low = prefix.replace(['%', '_'], "").to_ascii_lowercase();
        let high = format!("{low}\u{10FFFF}");
        let mut f = Filter::default();
        f.and("run_id >= {} AND run_id < {}", vals![low, high])
            .eq("tenant", self.tenant_filter());
        self.query_map(
            "reading a run",
            &format!("SELECT {RUN_COLUMNS} FROM runs{} ORDER BY started_at, rowid", f.sql()),
            f.params,
            run_row,
        )
        .await
    }

    /// The values a run wrote, in the order written: found through its connector rows, by
    /// tenant and time (each value is measured when its connector's run finished).
    pub async fn run_values(&self, run_id: &str) -> Result<Vec<crate::report::ValueRow>, StoreError> {
        let mut f = Filter::default();
        f.eq("r.run_id", Some(run_id)).eq("r.tenant", self.tenant_filter());
        self.query_map(
            "reading a run's values",
            &format!(
                "SELECT {V_COLUMNS} FROM runs r
                 JOIN kri_values v ON v.tenant = r.tenant AND v.measured_at = r.finished_at AND v.run_id = r.run_id
                                  AND v.connector = r.connector{}
                 ORDER BY v.id",
                f.sql()
            ),
            f.params,
            super::values::value_row,
        )
        .await
    }
}

/// What the store knows of one module's runs of one tenant (for a service's status and metrics).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ModuleRuns {
    pub tenant: String,
    pub module: String,
    /// Runs recorded by status (`ok`, `partial`, `failed`), since the store was made: pruning
    /// old runs does not lower them.
    pub by_status: Vec<(String, u64)>,
    /// When the newest `ok` run finished.
    pub last_success: Option<String>,
    /// The newest run: started, finished, status, error.
    pub last: Option<RunRow>,
}

impl Store {
    /// Per tenant and module: runs by status, the newest successful run and the newest run, from
    /// the read model (two queries, whatever the number of runs stored).
    pub async fn run_summary(&self) -> Result<Vec<ModuleRuns>, StoreError> {
        const ACTION: &str = "summarising runs";
        let mut f = Filter::default();
        f.eq("c.tenant", self.tenant_filter());
        let mut out = self
            .query_map(
                ACTION,
                &format!(
                    "SELECT c.last_success_at, r.tenant, r.run_id, r.connector, r.module, r.started_at, r.finished_at,
                            r.status, r.rows_written, r.rows_skipped, r.api_calls, r.error, c.tenant, c.module
                     FROM connector_latest c
                     LEFT JOIN runs r ON r.run_id = c.last_run_id AND r.tenant = c.tenant AND r.connector = c.connector
                     {} ORDER BY c.tenant, c.module",
                    f.sql()
                ),
                f.params,
                |r| {
                    let last = match r.opt_text(2)? {
                        Some(_) => Some(run_row(&Row(r.0[1..12].to_vec()))?),
                        None => None,
                    };
                    Ok(ModuleRuns {
                        tenant: r.text(12)?,
                        module: r.text(13)?,
                        by_status: Vec::new(),
                        last_success: r.opt_text(0)?,
                        last,
                    })
                },
            )
            .await?;
        let mut f = Filter::default();
        f.eq("tenant", self.tenant_filter());
        let counts = self
            .query_map(
                ACTION,
                &format!(
                    "SELECT tenant, module, status, runs FROM run_counts{} ORDER BY tenant, module, status",
                    f.sql()
                ),
                f.params,
                |r| Ok((r.text(0)?, r.text(1)?, r.text(2)?, r.u64(3)?)),
            )
            .await?;
        for (tenant, module, status, n) in counts {
            if let Some(m) = out.iter_mut().find(|m| m.tenant == tenant && m.module == module) {
                m.by_status.push((status, n));
            }
        }
        Ok(out)
    }

    /// The tenants that have runs, sorted (only the handle's own, when it is scoped).
    pub async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        let mut f = Filter::default();
        f.eq("tenant", self.tenant_filter());
        self.query_map(
            "reading the tenants",
            &format!(
                "SELECT DISTINCT tenant FROM connector_latest{} ORDER BY tenant",
                f.sql()
            ),
            f.params,
            |r| r.text(0),
        )
        .await
    }
}

pub(super) fn run_row(r: &Row) -> Result<RunRow, StoreFailure> {
    Ok(RunRow {
        tenant: r.text(0)?,
        run_id: r.text(1)?,
        connector: r.text(2)?,
        module: r.text(3)?,
        started_at: r.text(4)?,
        finished_at: r.text(5)?,
        status: r.text(6)?,
        rows_written: r.u64(7)?,
        rows_skipped: r.u64(8)?,
        api_calls: r.u64(9)?,
        error: r.opt_text(10)?,
    })
}
