//! Pruning: runs and values older than the horizon go, in small batches found by index, each
//! its own short transaction, so other writers (a run, another process) never wait long for
//! the store. A KRI's newest value, its newest good value and their runs always stay, and so
//! does each connector's last run. [`Store::prune_if_due`] does it at most once an hour per
//! store, whichever process gets there first.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::sql::{Filter, vals};
use super::{Backend, Store, StoreError, fmt_time};

/// How long one batch should hold the store's write lock, at most and about.
const BATCH_TARGET: Duration = Duration::from_millis(50);
/// Rows in the first batch; later batches grow or shrink to take about [`BATCH_TARGET`].
const FIRST_BATCH: u32 = 500;
const MAX_BATCH: u32 = 20_000;
/// The state row that says when the store was last pruned (no module or tenant has a `:`).
const PRUNED_NAMESPACE: &str = "kri:store";
const PRUNED_KEY: &str = "pruned_at";

/// What one prune pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: usize,
    pub values: usize,
    /// Batches (transactions) it took.
    pub batches: usize,
    /// The longest one batch held the store.
    pub longest_batch: Duration,
}

impl Store {
    /// [`Store::prune`], when no process pruned this store in the hour before `now`; `None`
    /// when it was not due. Every tenant's rows (a scoped handle prunes them all too: the
    /// horizon is the store's).
    pub async fn prune_if_due(&self, now: DateTime<Utc>, before: DateTime<Utc>) -> Result<Option<Pruned>, StoreError> {
        let hour_ago = now - chrono::Duration::hours(1);
        let at = fmt_time(&now);
        // Claim the hour: only one process's update finds the row an hour old (or missing).
        let claimed = self
            .execute(
                "claiming the hourly prune",
                "INSERT INTO state (namespace, key, value, updated_at, version) VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
                 WHERE state.updated_at <= ?5",
                vals![
                    PRUNED_NAMESPACE,
                    PRUNED_KEY,
                    serde_json::Value::String(at.clone()).to_string(),
                    &at,
                    fmt_time(&hour_ago)
                ],
            )
            .await?;
        if claimed == 0 {
            return Ok(None);
        }
        self.scoped(None).prune(before).await.map(Some)
    }

    /// Forget runs and values from before `before`, in batches: except each tenant's newest
    /// value and newest good value of each KRI, the runs that wrote values still kept, and each
    /// connector's last run. A scoped handle forgets only its tenant's.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<Pruned, StoreError> {
        let before = fmt_time(&before);
        let mut done = Pruned::default();
        let mut size = FIRST_BATCH;
        for table in [Table::Values, Table::Runs] {
            loop {
                let (sql, params) = self.prune_query(table, &before, size);
                let started = Instant::now();
                let n = self.execute(table.action(), &sql, params).await?;
                let took = started.elapsed();
                done.batches += 1;
                done.longest_batch = done.longest_batch.max(took);
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                match table {
                    Table::Values => done.values += n,
                    Table::Runs => done.runs += n,
                }
                if n < size as usize {
                    break;
                }
                size = next_batch(size, took);
            }
        }
        if done.values + done.runs > 0 {
            self.optimize().await?;
        }
        Ok(done)
    }

    /// One batch's DELETE: the oldest `size` rows of `table` that may go.
    pub(crate) fn prune_query(&self, table: Table, before: &str, size: u32) -> (String, Vec<super::sql::Val>) {
        let mut f = Filter::default();
        f.eq("tenant", self.tenant_filter());
        match table {
            Table::Values => {
                f.and("measured_at < {}", vals![before]);
                let where_ = f.sql();
                let size = f.param(size);
                (
                    format!(
                        "DELETE FROM kri_values WHERE id IN (
                           SELECT id FROM kri_values{where_}
                             AND id NOT IN (SELECT newest_id FROM kri_latest)
                             AND id NOT IN (SELECT good_id FROM kri_latest WHERE good_id IS NOT NULL)
                           ORDER BY measured_at LIMIT {size})"
                    ),
                    f.params,
                )
            }
            Table::Runs => {
                f.and("started_at < {} AND finished_at < {}", vals![before, before]);
                let where_ = f.sql();
                let size = f.param(size);
                (
                    format!(
                        "DELETE FROM runs WHERE (run_id, tenant, connector) IN (
                           SELECT run_id, tenant, connector FROM runs{where_}
                             AND NOT EXISTS (SELECT 1 FROM kri_values v
                                             WHERE v.run_id = runs.run_id AND v.tenant = runs.tenant
                                               AND v.connector = runs.connector)
                             AND NOT EXISTS (SELECT 1 FROM connector_latest c
                                             WHERE c.tenant = runs.tenant AND c.module = runs.module
                                               AND c.last_run_id = runs.run_id)
                           ORDER BY started_at LIMIT {size})"
                    ),
                    f.params,
                )
            }
        }
    }

    /// Let the engine refresh what its planner knows after many rows went: SQLite's `PRAGMA
    /// optimize` (cheap, bounded); PostgreSQL's autovacuum does it on its own.
    async fn optimize(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite { conn, .. } => {
                self.on_sqlite(conn, "optimizing after pruning", |c| {
                    c.execute_batch("PRAGMA analysis_limit = 1000; PRAGMA optimize;")?;
                    Ok(())
                })
                .await
            }
            Backend::Postgres { .. } => Ok(()),
        }
    }
}

/// The two tables pruned, values first (a run stays while any of its values does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Values,
    Runs,
}

impl Table {
    fn action(self) -> &'static str {
        match self {
            Table::Values => "pruning old values",
            Table::Runs => "pruning old runs",
        }
    }
}

/// The next batch's size: larger while batches are quick, smaller when one took too long.
fn next_batch(size: u32, took: Duration) -> u32 {
    if took > BATCH_TARGET {
        (size / 2).max(50)
    } else if took < BATCH_TARGET / 4 {
        size.saturating_mul(2).min(MAX_BATCH)
    } else {
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_grow_while_quick_and_shrink_when_slow() {
        assert_eq!(next_batch(500, Duration::from_millis(1)), 1000);
        assert_eq!(next_batch(MAX_BATCH, Duration::from_millis(1)), MAX_BATCH);
        assert_eq!(next_batch(500, Duration::from_millis(30)), 500);
        assert_eq!(next_batch(500, Duration::from_millis(200)), 250);
        assert_eq!(next_batch(60, Duration::from_secs(2)), 50);
    }
}
