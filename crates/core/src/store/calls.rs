//! Calls made per rate-limit pool, kept for a rolling 24 h so budgets survive restarts and
//! several processes on one store count together.

use chrono::{DateTime, Duration, Utc};
use rusqlite::params;

use super::{Store, StoreError, fmt_time};

impl Store {
    /// Calls recorded for `pool` of `namespace` after `since`.
    pub async fn calls_since(
        &self,
        namespace: &str,
        pool: &'static str,
        since: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let (ns, since) = (namespace.to_owned(), fmt_time(&since));
        self.call("reading the call budget", move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM api_calls WHERE namespace = ?1 AND pool = ?2 AND at > ?3",
                params![ns, pool, since],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Record one call for `pool` of `namespace` at `at`, forgetting calls older than a day.
    pub async fn record_call(&self, namespace: &str, pool: &'static str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let (ns, old, at) = (
            namespace.to_owned(),
            fmt_time(&(at - Duration::hours(25))),
            fmt_time(&at),
        );
        self.call("recording an API call", move |c| {
            c.execute(
                "INSERT INTO api_calls (namespace, pool, at) VALUES (?1, ?2, ?3)",
                params![ns, pool, at],
            )?;
            c.execute(
                "DELETE FROM api_calls WHERE namespace = ?1 AND at < ?2",
                params![ns, old],
            )?;
            Ok(())
        })
        .await
    }

    /// Calls recorded after `since`, per namespace and pool.
    pub async fn calls_by_pool(&self, since: DateTime<Utc>) -> Result<Vec<(String, String, u32)>, StoreError> {
        let since = fmt_time(&since);
        self.call("reading calls per pool", move |c| {
            let mut stmt = c.prepare(
                "SELECT namespace, pool, COUNT(*) FROM api_calls WHERE at > ?1 GROUP BY namespace, pool ORDER BY namespace, pool",
            )?;
            let rows = stmt.query_map(params![since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
        .await
    }
}
