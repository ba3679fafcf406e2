//! Calls made per rate-limit pool, kept for a rolling 24 h so budgets survive restarts and
//! several processes on one store count together.

use chrono::{DateTime, Duration, Utc};

use super::sql::vals;
use super::{Store, StoreError, fmt_time};

impl Store {
    /// Calls recorded for `pool` of `namespace` after `since`.
    pub async fn calls_since(
        &self,
        namespace: &str,
        pool: &'static str,
        since: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        self.query_opt(
            "reading the call budget",
            "SELECT COUNT(*) FROM api_calls WHERE namespace = ?1 AND pool = ?2 AND at > ?3",
            vals![namespace, pool, fmt_time(&since)],
            |r| r.u32(0),
        )
        .await
        .map(Option::unwrap_or_default)
    }

    /// Record one call for `pool` of `namespace` at `at`, forgetting calls older than a day.
    pub async fn record_call(&self, namespace: &str, pool: &'static str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let old = fmt_time(&(at - Duration::hours(25)));
        self.transaction(
            "recording an API call",
            vec![
                (
                    "INSERT INTO api_calls (namespace, pool, at) VALUES (?1, ?2, ?3)",
                    vals![namespace, pool, fmt_time(&at)],
                ),
                (
                    "DELETE FROM api_calls WHERE namespace = ?1 AND at < ?2",
                    vals![namespace, old],
                ),
            ],
        )
        .await
        .map(|_| ())
    }

    /// Calls recorded after `since`, per namespace and pool.
    pub async fn calls_by_pool(&self, since: DateTime<Utc>) -> Result<Vec<(String, String, u32)>, StoreError> {
        self.query_map(
            "reading calls per pool",
            "SELECT namespace, pool, COUNT(*) FROM api_calls WHERE at > ?1 GROUP BY namespace, pool ORDER BY namespace, pool",
            vals![fmt_time(&since)],
            |r| Ok((r.text(0)?, r.text(1)?, r.u32(2)?)),
        )
        .await
    }
}
