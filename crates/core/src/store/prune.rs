//! Pruning: runs and values older than the horizon go, tenant by tenant, in transactions of
//! about [`BATCH_TIME`] each, so other writers (a run, another process) never wait long for the
//! store. A tenant's old rows sit together in its indexes, so a short transaction deletes many
//! of them for few pages written; the same rows taken oldest first across all tenants would
//! touch a page per row. A KRI's newest value, its newest good value and their runs always
//! stay, and so does each connector's last run. [`Store::prune_if_due`] does it at most once
//! an hour per store, whichever process gets there first.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::sql::{Filter, StatementSource, Val, vals};
use super::{Backend, Store, StoreError, fmt_time};

/// How long one transaction of a prune goes on deleting (it then commits).
const BATCH_TIME: Duration = Duration::from_millis(25);
/// Rows one statement deletes at most: one tenant's old rows, or a slice of them.
const STATEMENT_ROWS: u32 = 1000;
/// The state row that says when the store was last pruned (no module or tenant has a `:`).
const PRUNED_NAMESPACE: &str = "kri:store";
const PRUNED_KEY: &str = "pruned_at";

/// What one prune pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: usize,
    pub values: usize,
    /// Days of the charts' daily rollups.
    pub days: usize,
    /// Transactions it took.
    pub batches: usize,
    /// The longest one transaction held the store.
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

    /// Forget runs and values from before `before`, tenant by tenant in short transactions:
    /// except each tenant's newest value and newest good value of each KRI, the runs that wrote
    /// values still kept, and each connector's last run. A scoped handle forgets only its
    /// tenant's.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<Pruned, StoreError> {
        self.prune_with(before, BATCH_TIME).await
    }

    /// [`Store::prune`], each transaction deleting for `batch_time` (at least one statement).
    pub(crate) async fn prune_with(&self, before: DateTime<Utc>, batch_time: Duration) -> Result<Pruned, StoreError> {
        let before = fmt_time(&before);
        let tenants: VecDeque<String> = match self.tenant_filter() {
            Some(t) => VecDeque::from([t.to_owned()]),
            None => self
                .query_map(
                    "listing the tenants to prune",
                    "SELECT tenant FROM kri_latest UNION SELECT tenant FROM connector_latest ORDER BY 1",
                    vals![],
                    |r| r.text(0),
                )
                .await?
                .into(),
        };
        let mut done = Pruned::default();
        for table in [Table::Values, Table::Runs, Table::Days] {
            let mut work = PruneWork {
                table,
                before: before.clone(),
                tenants: tenants.clone(),
                deleted: 0,
            };
            while !work.tenants.is_empty() {
                let started = Instant::now();
                work = self.transaction_for(table.action(), batch_time, work).await?;
                done.batches += 1;
                done.longest_batch = done.longest_batch.max(started.elapsed());
            }
            match table {
                Table::Values => done.values = work.deleted,
                Table::Runs => done.runs = work.deleted,
                Table::Days => done.days = work.deleted,
            }
        }
        // Events as old as the values they were about (a few a day: one statement).
        let mut events = Filter::default();
        events.eq("tenant", self.tenant_filter());
        events.and("time < {}", vec![before.clone().into()]);
        self.execute(
            "pruning old events",
            &format!("DELETE FROM outbox{}", events.sql()),
            events.params,
        )
        .await?;
        if done.values + done.runs > 0 {
            self.optimize().await?;
        }
        Ok(done)
    }

    /// One statement of a prune: at most `rows` old rows of `table` of one tenant.
    pub(crate) fn prune_query(table: Table, tenant: &str, before: &str, rows: u32) -> (String, Vec<Val>) {
        let mut f = Filter::default();
        f.eq("tenant", Some(tenant));
        match table {
            Table::Values => {
                f.and("measured_at < {}", vals![before]);
                let where_ = f.sql();
                let rows = f.param(rows);
                (
                    format!(
                        "DELETE FROM kri_values WHERE id IN (
                           SELECT id FROM kri_values{where_}
                             AND NOT EXISTS (SELECT 1 FROM kri_latest l
                                             WHERE l.tenant = kri_values.tenant AND l.slug = kri_values.slug
                                               AND (l.newest_id = kri_values.id OR l.good_id = kri_values.id))
                           ORDER BY measured_at LIMIT {rows})"
                    ),
                    f.params,
                )
            }
            Table::Days => {
                // Whole days before the horizon's day.
                f.and("day < {}", vals![before.get(..10).unwrap_or(before)]);
                let where_ = f.sql();
                let rows = f.param(rows);
                (
                    format!(
                        "DELETE FROM kri_daily WHERE (tenant, slug, day) IN (
                           SELECT tenant, slug, day FROM kri_daily{where_} ORDER BY slug, day LIMIT {rows})"
                    ),
                    f.params,
                )
            }
            Table::Runs => {
                f.and("started_at < {} AND finished_at < {}", vals![before, before]);
                let where_ = f.sql();
                let rows = f.param(rows);
                (
                    format!(
                        "DELETE FROM runs WHERE (run_id, tenant, connector) IN (
                           SELECT run_id, tenant, connector FROM runs{where_}
                             AND NOT EXISTS (SELECT 1 FROM kri_values v
                                             WHERE v.tenant = runs.tenant AND v.measured_at = runs.finished_at
                                               AND v.run_id = runs.run_id AND v.connector = runs.connector)
                             AND NOT EXISTS (SELECT 1 FROM connector_latest c
                                             WHERE c.tenant = runs.tenant AND c.module = runs.module
                                               AND c.last_run_id = runs.run_id)
                           ORDER BY started_at LIMIT {rows})"
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

/// The tables pruned, values before runs (a run stays while any of its values does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Values,
    Runs,
    Days,
}

impl Table {
    fn action(self) -> &'static str {
        match self {
            Table::Values => "pruning old values",
            Table::Runs => "pruning old runs",
            Table::Days => "pruning old daily rollups",
        }
    }
}

/// What is left of one table's prune: the tenants not done yet (the first one under way).
struct PruneWork {
    table: Table,
    before: String,
    tenants: VecDeque<String>,
    deleted: usize,
}

impl StatementSource for PruneWork {
    fn next(&mut self) -> Option<(String, Vec<Val>)> {
        let tenant = self.tenants.front()?;
        Some(Store::prune_query(self.table, tenant, &self.before, STATEMENT_ROWS))
    }

    fn done(&mut self, changed: u64) {
        self.deleted += usize::try_from(changed).unwrap_or(usize::MAX);
        // Fewer than asked: that tenant has nothing old left.
        if changed < u64::from(STATEMENT_ROWS) {
            self.tenants.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_is_done_when_a_statement_deletes_fewer_than_it_may() {
        let mut work = PruneWork {
            table: Table::Values,
            before: "2026-01-01T00:00:00Z".into(),
            tenants: VecDeque::from(["acme".to_owned(), "globex".to_owned()]),
            deleted: 0,
        };
        let (sql, params) = work.next().unwrap();
        assert!(sql.contains("tenant = ?1") && sql.contains("LIMIT ?3"), "{sql}");
        assert_eq!(params[0], Val::Text("acme".into()));
        work.done(u64::from(STATEMENT_ROWS));
        assert_eq!(
            work.next().unwrap().1[0],
            Val::Text("acme".into()),
            "acme again: it may have more"
        );
        work.done(3);
        assert_eq!(work.next().unwrap().1[0], Val::Text("globex".into()));
        work.done(0);
        assert!(work.next().is_none());
        assert_eq!(work.deleted, STATEMENT_ROWS as usize + 3);
    }
}
