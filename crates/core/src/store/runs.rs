//! Runs and KRI values: written one run per transaction, read back for `kri history` and
//! `kri values`, and the last good value of a KRI.

use chrono::{DateTime, Utc};

use super::sql::{Row, Statement, vals};
use super::{Store, StoreError, StoreFailure, fmt_time};
use crate::report::{RunReport, RunRow, ValueRow};
use crate::secret::scrub;

// An optional filter is `(CAST(?N AS TEXT) IS NULL OR column = ?N)`: PostgreSQL cannot tell
// the type of a parameter whose first use is `?N IS NULL`, and the cast tells it (SQLite
// ignores it). Every read is filtered by the handle's tenant that way (`None`: all tenants).

/// The columns [`run_row`] reads.
const RUN_COLUMNS: &str = "tenant, run_id, connector, module, started_at, finished_at, status, rows_written, \
                           rows_skipped, api_calls, error";
/// The columns [`value_row`] reads.
const VALUE_COLUMNS: &str = "tenant, slug, connector, run_id, measured_at, value, unit, status, band, message";

impl Store {
    /// Write a whole run (every connector's row and every KRI outcome) in ONE transaction, each
    /// row as its connector report's tenant's.
    pub async fn write_run(&self, run: &RunReport) -> Result<(), StoreError> {
        self.write_run_marked(run, &[]).await
    }

    /// [`Store::write_run`], and in the same transaction mark each `(name, slot)`: the slot of
    /// the (tenant, connector) `name` is run (see [`Store::slot_done`]). A mark never moves back.
    pub async fn write_run_marked(&self, run: &RunReport, marks: &[(String, String)]) -> Result<(), StoreError> {
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
            for k in &r.kris {
                statements.push((
                    "INSERT INTO kri_values (tenant, run_id, connector, slug, measured_at, value, unit, status, band,
                                             message)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
                        k.message.as_deref().map(scrub)
                    ],
                ));
            }
        }
        self.transaction("writing the run", statements).await.map(|_| ())
    }

    /// Forget runs and values from before `before`, except each tenant's newest good value of
    /// each KRI (and its run), so a KRI measured rarely keeps its last good value. A scoped
    /// handle forgets only its tenant's. Returns (runs, values) deleted.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<(usize, usize), StoreError> {
        let before = fmt_time(&before);
        let counts = self
            .transaction(
                "pruning old runs and values",
                vec![
                    (
                        // `kept` is NULL for a KRI that never had a good value: leave those out,
                        // since `id NOT IN (…, NULL)` is never true and would keep every row.
                        "DELETE FROM kri_values WHERE measured_at < ?1
                           AND (CAST(?2 AS TEXT) IS NULL OR tenant = ?2)
                           AND id NOT IN (
                             SELECT kept FROM (
                                 SELECT (SELECT k.id FROM kri_values k
                                         WHERE k.tenant = s.tenant AND k.slug = s.slug AND k.value IS NOT NULL
                                         ORDER BY k.measured_at DESC, k.id DESC LIMIT 1) AS kept
                                 FROM (SELECT DISTINCT tenant, slug FROM kri_values) s) newest
                             WHERE kept IS NOT NULL)",
                        vals![&before, self.tenant_filter()],
                    ),
                    (
                        "DELETE FROM runs WHERE started_at < ?1
                           AND (CAST(?2 AS TEXT) IS NULL OR tenant = ?2)
                           AND NOT EXISTS (
                             SELECT 1 FROM kri_values v
                             WHERE v.tenant = runs.tenant AND v.run_id = runs.run_id AND v.connector = runs.connector)",
                        vals![&before, self.tenant_filter()],
                    ),
                ],
            )
            .await?;
        let count = |i: usize| counts.get(i).map_or(0, |&n| usize::try_from(n).unwrap_or(usize::MAX));
        Ok((count(1), count(0)))
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

    /// The newest value of every (tenant, KRI), good or not (the overview's bands).
    pub async fn latest_values(&self) -> Result<Vec<ValueRow>, StoreError> {
        self.latest("reading the newest values", "").await
    }

    /// The newest good value of every (tenant, KRI) (`/metrics`' `kri_value`).
    pub async fn latest_good_values(&self) -> Result<Vec<ValueRow>, StoreError> {
        self.latest("reading the last good values", "AND k.value IS NOT NULL")
            .await
    }

    async fn latest(&self, action: &'static str, good: &'static str) -> Result<Vec<ValueRow>, StoreError> {
        // One index seek per (tenant, KRI), whatever the number of stored values.
        self.query_map(
            action,
            &format!(
                "SELECT {VALUE_COLUMNS} FROM kri_values WHERE id IN (
                     SELECT (SELECT k.id FROM kri_values k
                             WHERE k.tenant = s.tenant AND k.slug = s.slug {good}
                             ORDER BY k.measured_at DESC, k.id DESC LIMIT 1)
                     FROM (SELECT DISTINCT tenant, slug FROM kri_values
                           WHERE CAST(?1 AS TEXT) IS NULL OR tenant = ?1) s)
                 ORDER BY tenant, slug"
            ),
            vals![self.tenant_filter()],
            value_row,
        )
        .await
    }

    /// The most recent connector runs, newest first.
    pub async fn history(&self, limit: u32, module: Option<String>) -> Result<Vec<RunRow>, StoreError> {
        self.query_map(
            "reading run history",
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE (CAST(?1 AS TEXT) IS NULL OR module = ?1) AND (CAST(?3 AS TEXT) IS NULL OR tenant = ?3)
                 ORDER BY started_at DESC, rowid DESC LIMIT ?2"
            ),
            vals![module, limit, self.tenant_filter()],
            run_row,
        )
        .await
    }

    /// Stored values, newest first, for one slug or all.
    pub async fn values(&self, slug: Option<String>, limit: u32) -> Result<Vec<ValueRow>, StoreError> {
        self.values_since(slug, None, limit).await
    }

    /// Stored values measured at or after `since` (all when `None`), newest first, each with the
    /// KRI's previous value (the newest older row of the same tenant that has one) and the
    /// change from it.
    pub async fn values_since(
        &self,
        slug: Option<String>,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<ValueRow>, StoreError> {
        self.query_map(
            "reading values",
            "SELECT v.tenant, v.slug, v.connector, v.run_id, v.measured_at, v.value, v.unit, v.status, v.band,
                    v.message,
                    (SELECT p.value FROM kri_values p
                     WHERE p.tenant = v.tenant AND p.slug = v.slug AND p.value IS NOT NULL
                       AND (p.measured_at < v.measured_at OR (p.measured_at = v.measured_at AND p.id < v.id))
                     ORDER BY p.measured_at DESC, p.id DESC LIMIT 1)
             FROM kri_values v WHERE (CAST(?1 AS TEXT) IS NULL OR v.slug = ?1)
               AND (CAST(?2 AS TEXT) IS NULL OR v.measured_at >= ?2)
               AND (CAST(?4 AS TEXT) IS NULL OR v.tenant = ?4)
             ORDER BY v.measured_at DESC, v.id DESC LIMIT ?3",
            vals![slug, since.map(|t| fmt_time(&t)), limit, self.tenant_filter()],
            |r| {
                let mut row = value_row(r)?;
                row.previous = r.opt_real(10)?;
                row.delta = row.value.zip(row.previous).map(|(v, p)| v - p);
                Ok(row)
            },
        )
        .await
    }

    /// The values a run wrote, in the order written.
    pub async fn run_values(&self, run_id: &str) -> Result<Vec<ValueRow>, StoreError> {
        self.query_map(
            "reading a run's values",
            &format!(
                "SELECT {VALUE_COLUMNS} FROM kri_values
                 WHERE run_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR tenant = ?2) ORDER BY id"
            ),
            vals![run_id, self.tenant_filter()],
            value_row,
        )
        .await
    }

    /// The connector rows of the runs whose id starts with `prefix` (a whole id, or enough of its
    /// start to be unique; letters in any case), oldest first.
    pub async fn run_rows(&self, prefix: &str) -> Result<Vec<RunRow>, StoreError> {
        // SQLite's LIKE ignores the case of ASCII letters, PostgreSQL's does not: lower both
        // sides so the engines agree.
        let pattern = format!("{}%", prefix.replace(['%', '_'], "").to_ascii_lowercase());
        self.query_map(
            "reading a run",
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE lower(run_id) LIKE ?1 AND (CAST(?2 AS TEXT) IS NULL OR tenant = ?2)
                 ORDER BY started_at, rowid"
            ),
            vals![pattern, self.tenant_filter()],
            run_row,
        )
        .await
    }

    /// The newest value that is not a failure (the "last good value"): the tenant's, for a
    /// scoped handle.
    pub async fn last_good(&self, slug: &str) -> Result<Option<ValueRow>, StoreError> {
        self.query_opt(
            "reading the last good value",
            &format!(
                "SELECT {VALUE_COLUMNS} FROM kri_values
                 WHERE slug = ?1 AND value IS NOT NULL AND (CAST(?2 AS TEXT) IS NULL OR tenant = ?2)
                 ORDER BY measured_at DESC, id DESC LIMIT 1"
            ),
            vals![slug, self.tenant_filter()],
            value_row,
        )
        .await
    }
}

/// What the store knows of one module's runs of one tenant (for a service's status and metrics).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ModuleRuns {
    pub tenant: String,
    pub module: String,
    /// Stored runs by status (`ok`, `partial`, `failed`).
    pub by_status: Vec<(String, u64)>,
    /// When the newest `ok` run finished.
    pub last_success: Option<String>,
    /// The newest run: started, finished, status, error.
    pub last: Option<RunRow>,
}

impl Store {
    /// Per tenant and module: runs by status, the newest successful run and the newest run.
    pub async fn run_summary(&self) -> Result<Vec<ModuleRuns>, StoreError> {
        const ACTION: &str = "summarising runs";
        let counts = self
            .query_map(
                ACTION,
                "SELECT tenant, module, status, COUNT(*) FROM runs WHERE (CAST(?1 AS TEXT) IS NULL OR tenant = ?1)
                 GROUP BY tenant, module, status ORDER BY tenant, module, status",
                vals![self.tenant_filter()],
                |r| Ok((r.text(0)?, r.text(1)?, r.text(2)?, r.u64(3)?)),
            )
            .await?;
        let mut out: Vec<ModuleRuns> = Vec::new();
        for (tenant, module, status, n) in counts {
            match out.iter_mut().find(|m| m.tenant == tenant && m.module == module) {
                Some(m) => m.by_status.push((status, n)),
                None => out.push(ModuleRuns {
                    tenant,
                    module,
                    by_status: vec![(status, n)],
                    ..ModuleRuns::default()
                }),
            }
        }
        for m in &mut out {
            m.last_success = self
                .query_opt(
                    ACTION,
                    "SELECT MAX(finished_at) FROM runs WHERE tenant = ?1 AND module = ?2 AND status = 'ok'",
                    vals![&m.tenant, &m.module],
                    |r| r.opt_text(0),
                )
                .await?
                .flatten();
            m.last = self
                .query_opt(
                    ACTION,
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE tenant = ?1 AND module = ?2
                         ORDER BY started_at DESC, rowid DESC LIMIT 1"
                    ),
                    vals![&m.tenant, &m.module],
                    run_row,
                )
                .await?;
        }
        Ok(out)
    }

    /// The values of `slug` measured at or after `since`, oldest first (at most `limit`, the newest).
    pub async fn series(&self, slug: &str, since: DateTime<Utc>, limit: u32) -> Result<Vec<ValueRow>, StoreError> {
        let mut rows = self
            .query_map(
                "reading a KRI's history",
                &format!(
                    "SELECT {VALUE_COLUMNS} FROM kri_values
                     WHERE slug = ?1 AND measured_at >= ?2 AND (CAST(?4 AS TEXT) IS NULL OR tenant = ?4)
                     ORDER BY measured_at DESC, id DESC LIMIT ?3"
                ),
                vals![slug, fmt_time(&since), limit, self.tenant_filter()],
                value_row,
            )
            .await?;
        rows.reverse();
        Ok(rows)
    }

    /// The tenants that have runs, sorted (only the handle's own, when it is scoped).
    pub async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        self.query_map(
            "reading the tenants",
            "SELECT DISTINCT tenant FROM runs WHERE (CAST(?1 AS TEXT) IS NULL OR tenant = ?1) ORDER BY tenant",
            vals![self.tenant_filter()],
            |r| r.text(0),
        )
        .await
    }
}

fn run_row(r: &Row) -> Result<RunRow, StoreFailure> {
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

fn value_row(r: &Row) -> Result<ValueRow, StoreFailure> {
    let slug = r.text(1)?;
    Ok(ValueRow {
        tenant: r.text(0)?,
        module: crate::registry::find_kri(&slug)
            .map(|(reg, _)| reg.module.to_owned())
            .unwrap_or_default(),
        slug,
        connector: r.text(2)?,
        run_id: r.text(3)?,
        measured_at: r.text(4)?,
        value: r.opt_real(5)?,
        unit: r.text(6)?,
        status: r.text(7)?,
        band: r.opt_text(8)?,
        message: r.opt_text(9)?,
        previous: None,
        delta: None,
    })
}
