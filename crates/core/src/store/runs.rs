//! Runs and KRI values: written one run per transaction, read back for `kri history` and
//! `kri values`, and the last good value of a KRI.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, fmt_time};
use crate::report::{RunReport, RunRow, ValueRow};
use crate::secret::scrub;

impl Store {
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

    /// Forget runs and values from before `before`, except each KRI's newest good value (and
    /// its run), so a KRI measured rarely keeps its last good value. Returns (runs, values)
    /// deleted.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<(usize, usize), StoreError> {
        let before = fmt_time(&before);
        self.call("pruning old runs and values", move |c| {
            let tx = c.transaction()?;
            let values = tx.execute(
                // `kept` is NULL for a KRI that never had a good value: leave those out, since
                // `id NOT IN (…, NULL)` is never true and would keep every row.
                "DELETE FROM kri_values WHERE measured_at < ?1 AND id NOT IN (
                     SELECT kept FROM (
                         SELECT (SELECT k.id FROM kri_values k WHERE k.slug = s.slug AND k.value IS NOT NULL
                                 ORDER BY k.measured_at DESC, k.id DESC LIMIT 1) AS kept
                         FROM (SELECT DISTINCT slug FROM kri_values) s) newest
                     WHERE kept IS NOT NULL)",
                params![before],
            )?;
            let runs = tx.execute(
                "DELETE FROM runs WHERE started_at < ?1 AND NOT EXISTS (
                     SELECT 1 FROM kri_values v WHERE v.run_id = runs.run_id AND v.connector = runs.connector)",
                params![before],
            )?;
            tx.commit()?;
            Ok((runs, values))
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
            let rows = stmt.query_map(params![module, limit], run_row)?;
            rows.collect()
        })
        .await
    }

    /// Stored values, newest first, for one slug or all.
    pub async fn values(&self, slug: Option<String>, limit: u32) -> Result<Vec<ValueRow>, StoreError> {
        self.values_since(slug, None, limit).await
    }

    /// Stored values measured at or after `since` (all when `None`), newest first, each with the
    /// KRI's previous value (the newest older row that has one) and the change from it.
    pub async fn values_since(
        &self,
        slug: Option<String>,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<ValueRow>, StoreError> {
        let since = since.map(|t| fmt_time(&t));
        self.call("reading values", move |c| {
            let mut stmt = c.prepare(
                "SELECT v.slug, v.connector, v.run_id, v.measured_at, v.value, v.unit, v.status, v.band, v.message,
                        (SELECT p.value FROM kri_values p
                         WHERE p.slug = v.slug AND p.value IS NOT NULL
                           AND (p.measured_at < v.measured_at OR (p.measured_at = v.measured_at AND p.id < v.id))
                         ORDER BY p.measured_at DESC, p.id DESC LIMIT 1)
                 FROM kri_values v WHERE (?1 IS NULL OR v.slug = ?1) AND (?2 IS NULL OR v.measured_at >= ?2)
                 ORDER BY v.measured_at DESC, v.id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![slug, since, limit], |r| {
                let mut row = value_row(r)?;
                row.previous = r.get(9)?;
                row.delta = row.value.zip(row.previous).map(|(v, p)| v - p);
                Ok(row)
            })?;
            rows.collect()
        })
        .await
    }

    /// The values a run wrote, in the order written.
    pub async fn run_values(&self, run_id: &str) -> Result<Vec<ValueRow>, StoreError> {
        let run_id = run_id.to_owned();
        self.call("reading a run's values", move |c| {
            let mut stmt = c.prepare(
                "SELECT slug, connector, run_id, measured_at, value, unit, status, band, message
                 FROM kri_values WHERE run_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![run_id], value_row)?;
            rows.collect()
        })
        .await
    }

    /// The connector rows of the runs whose id starts with `prefix` (a whole id, or enough of its
    /// start to be unique), oldest first.
    pub async fn run_rows(&self, prefix: &str) -> Result<Vec<RunRow>, StoreError> {
        let pattern = format!("{}%", prefix.replace(['%', '_'], ""));
        self.call("reading a run", move |c| {
            let mut stmt = c.prepare(
                "SELECT run_id, connector, module, started_at, finished_at, status, rows_written,
                        rows_skipped, api_calls, error
                 FROM runs WHERE run_id LIKE ?1 ORDER BY started_at, rowid",
            )?;
            let rows = stmt.query_map(params![pattern], run_row)?;
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
}

/// What the store knows of one module's runs (for a service's status and metrics).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ModuleRuns {
    pub module: String,
    /// Stored runs by status (`ok`, `partial`, `failed`).
    pub by_status: Vec<(String, u64)>,
    /// When the newest `ok` run finished.
    pub last_success: Option<String>,
    /// The newest run: started, finished, status, error.
    pub last: Option<RunRow>,
}

impl Store {
    /// Per module: runs by status, the newest successful run and the newest run.
    pub async fn run_summary(&self) -> Result<Vec<ModuleRuns>, StoreError> {
        self.call("summarising runs", |c| {
            let mut out: Vec<ModuleRuns> = Vec::new();
            let mut stmt =
                c.prepare("SELECT module, status, COUNT(*) FROM runs GROUP BY module, status ORDER BY module, status")?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, u64>(2)?))
            })?;
            for row in rows {
                let (module, status, n) = row?;
                match out.iter_mut().find(|m| m.module == module) {
                    Some(m) => m.by_status.push((status, n)),
                    None => out.push(ModuleRuns {
                        module,
                        by_status: vec![(status, n)],
                        ..ModuleRuns::default()
                    }),
                }
            }
            for m in &mut out {
                m.last_success = c
                    .query_row(
                        "SELECT MAX(finished_at) FROM runs WHERE module = ?1 AND status = 'ok'",
                        params![m.module],
                        |r| r.get(0),
                    )
                    .optional()?
                    .flatten();
                m.last = c
                    .query_row(
                        "SELECT run_id, connector, module, started_at, finished_at, status, rows_written,
                                rows_skipped, api_calls, error
                         FROM runs WHERE module = ?1 ORDER BY started_at DESC, rowid DESC LIMIT 1",
                        params![m.module],
                        run_row,
                    )
                    .optional()?;
            }
            Ok(out)
        })
        .await
    }

    /// The values of `slug` measured at or after `since`, oldest first (at most `limit`, the newest).
    pub async fn series(&self, slug: &str, since: DateTime<Utc>, limit: u32) -> Result<Vec<ValueRow>, StoreError> {
        let (slug, since) = (slug.to_owned(), fmt_time(&since));
        self.call("reading a KRI's history", move |c| {
            let mut stmt = c.prepare(
                "SELECT slug, connector, run_id, measured_at, value, unit, status, band, message
                 FROM kri_values WHERE slug = ?1 AND measured_at >= ?2
                 ORDER BY measured_at DESC, id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![slug, since, limit], value_row)?;
            let mut rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            rows.reverse();
            Ok(rows)
        })
        .await
    }
}

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
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
}

fn value_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ValueRow> {
    let slug: String = r.get(0)?;
    Ok(ValueRow {
        module: crate::registry::find_kri(&slug)
            .map(|(reg, _)| reg.module.to_owned())
            .unwrap_or_default(),
        slug,
        connector: r.get(1)?,
        run_id: r.get(2)?,
        measured_at: r.get(3)?,
        value: r.get(4)?,
        unit: r.get(5)?,
        status: r.get(6)?,
        band: r.get(7)?,
        message: r.get(8)?,
        previous: None,
        delta: None,
    })
}
