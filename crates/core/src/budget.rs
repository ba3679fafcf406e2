//! API call budgets: Proofpoint limits are per credential and per pool over a ROLLING 24 h.
//! Every call is recorded in the store, so the budget survives restarts; a 429 stops that pool
//! for the rest of the run (no retry storms: a throttled pool stays throttled for hours).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::Duration;
use rusqlite::params;

use crate::clock::Clock;
use crate::error::{HttpError, KriError};
use crate::store::{Store, fmt_time};

/// A rate-limit pool: `limit` calls per rolling 24 h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub name: &'static str,
    pub limit: u32,
}

/// Per-connector call accounting for one run.
#[derive(Clone)]
pub struct Budget {
    store: Store,
    namespace: String,
    clock: Arc<dyn Clock>,
    throttled: Arc<Mutex<BTreeSet<&'static str>>>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget").field("namespace", &self.namespace).finish()
    }
}

impl Budget {
    pub fn new(store: Store, namespace: &str, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            namespace: namespace.to_owned(),
            clock,
            throttled: Default::default(),
        }
    }

    /// Calls recorded against `pool` in the last 24 h.
    pub async fn used_24h(&self, pool: &Pool) -> Result<u32, KriError> {
        let (ns, name, since) = (
            self.namespace.clone(),
            pool.name,
            fmt_time(&(self.clock.now() - Duration::hours(24))),
        );
        self.store
            .call("reading the call budget", move |c| {
                c.query_row(
                    "SELECT COUNT(*) FROM api_calls WHERE namespace = ?1 AND pool = ?2 AND at > ?3",
                    params![ns, name, since],
                    |r| r.get(0),
                )
            })
            .await
            .map_err(|e| KriError::Store(e.to_string()))
    }

    /// Whether a 429 (or an exhausted budget) stopped `pool` earlier in this run.
    pub fn is_throttled(&self, pool: &Pool) -> bool {
        self.throttled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(pool.name)
    }

    fn stop(&self, pool: &Pool) {
        self.throttled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pool.name);
    }

    fn throttled_message(pool: &Pool, why: &str) -> String {
        format!(
            "the `{}` API pool is throttled ({why}): Proofpoint allows {} calls per rolling 24 h per credential, \
             so it may stay throttled for up to 24 h; kri stopped calling it for this run and keeps the last good values",
            pool.name, pool.limit
        )
    }

    /// Make one call against `pool`: refused without a call when the pool is throttled or its
    /// 24 h budget is used up; recorded; a 429 stops the pool for the rest of the run.
    pub async fn call<T>(&self, pool: &Pool, call: impl Future<Output = Result<T, HttpError>>) -> Result<T, KriError> {
        if self.is_throttled(pool) {
            return Err(KriError::Skipped(Self::throttled_message(
                pool,
                "HTTP 429 earlier in this run",
            )));
        }
        let used = self.used_24h(pool).await?;
        if used >= pool.limit {
            self.stop(pool);
            return Err(KriError::Skipped(Self::throttled_message(
                pool,
                &format!("{used} of {} calls already made in the last 24 h", pool.limit),
            )));
        }
        self.record(pool).await?;
        match call.await {
            Err(HttpError::Throttled { endpoint }) => {
                self.stop(pool);
                tracing::warn!(pool = pool.name, %endpoint, "HTTP 429: pool stopped for this run");
                Err(KriError::Skipped(Self::throttled_message(
                    pool,
                    &format!("HTTP 429 on {endpoint}"),
                )))
            }
            other => other.map_err(KriError::from),
        }
    }

    async fn record(&self, pool: &Pool) -> Result<(), KriError> {
        let now = self.clock.now();
        let (ns, name, at, old) = (
            self.namespace.clone(),
            pool.name,
            fmt_time(&now),
            fmt_time(&(now - Duration::hours(25))),
        );
        self.store
            .call("recording an API call", move |c| {
                c.execute(
                    "INSERT INTO api_calls (namespace, pool, at) VALUES (?1, ?2, ?3)",
                    params![ns, name, at],
                )?;
                c.execute(
                    "DELETE FROM api_calls WHERE namespace = ?1 AND at < ?2",
                    params![ns, old],
                )?;
                Ok(())
            })
            .await
            .map_err(|e| KriError::Store(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const POOL: Pool = Pool { name: "siem", limit: 3 };

    fn budget() -> (Budget, ManualClock) {
        let clock = ManualClock::new(crate::testing::fixed_now());
        (
            Budget::new(Store::in_memory().unwrap(), "tap", Arc::new(clock.clone())),
            clock,
        )
    }

    #[tokio::test]
    async fn calls_count_over_a_rolling_24_hours() {
        let (b, clock) = budget();
        for _ in 0..3 {
            b.call(&POOL, async { Ok::<_, HttpError>(()) }).await.unwrap();
        }
        assert_eq!(b.used_24h(&POOL).await.unwrap(), 3);
        let e = b.call(&POOL, async { Ok::<_, HttpError>(()) }).await.unwrap_err();
        assert!(e.to_string().contains("3 of 3 calls"), "{e}");
        clock.advance(Duration::hours(24) + Duration::seconds(1));
        let fresh = Budget::new(b.store.clone(), "tap", Arc::new(clock.clone()));
        assert_eq!(fresh.used_24h(&POOL).await.unwrap(), 0);
        fresh.call(&POOL, async { Ok::<_, HttpError>(()) }).await.unwrap();
    }

    #[tokio::test]
    async fn a_429_stops_the_pool_without_another_call() {
        let (b, _) = budget();
        let big = Pool {
            name: "siem",
            limit: 1800,
        };
        let e = b
            .call(&big, async {
                Err::<(), _>(HttpError::Throttled {
                    endpoint: "GET /v2/siem/all".into(),
                })
            })
            .await;
        assert!(e.unwrap_err().to_string().contains("up to 24 h"));
        let mut called = false;
        let e = b
            .call(&big, async {
                called = true;
                Ok::<_, HttpError>(())
            })
            .await;
        assert!(e.is_err());
        assert!(!called, "no call after a 429");
        assert_eq!(b.used_24h(&big).await.unwrap(), 1);
        let other = Pool {
            name: "people",
            limit: 50,
        };
        b.call(&other, async { Ok::<_, HttpError>(()) }).await.unwrap();
    }
}
