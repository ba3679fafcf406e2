//! API call budgets and the per-run guard of every pool. Every request that goes on the wire
//! (first attempts, retries, redirect hops, token fetches) is admitted here first: counted for
//! the run, recorded in the store against its pool (so rolling-24 h limits survive restarts and
//! `kri run --plan` tells the truth), and refused when the pool is stopped.
//!
//! A pool stops for the rest of the run when its 24 h budget is used up, when a pool with such a
//! limit answers 429 (a rolling-24 h limit stays throttled for hours: retrying in seconds only
//! burns calls), or after [`BREAKER_THRESHOLD`] failures of the same kind in a row (5xx,
//! time-outs, 401, 403, unreadable answers): an API that fails every call gets a few calls, not
//! hundreds.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Duration;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::error::{HttpError, KriError};
use crate::store::Store;

/// Counts API calls: every request that went on the wire.
#[derive(Clone, Debug, Default)]
pub struct CallCounter(Arc<AtomicU64>);

impl CallCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Failures of the same kind in a row after which a pool is stopped for the run.
pub const BREAKER_THRESHOLD: u32 = 3;

/// A rate-limit pool: the calls of one kind an API counts together. Connectors declare their
/// pools; the HTTP layer and [`Budget`] enforce them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub name: &'static str,
    /// Calls allowed per rolling 24 h, when the API limits them that way. A 429 on such a pool
    /// stops it for the run (it stays throttled for hours).
    pub limit: Option<u32>,
    /// Calls kri allows itself per rolling minute (requests wait for room). A 429 on a pool
    /// without a daily limit is waited out and retried, with back-off.
    pub per_minute: Option<u32>,
}

impl Pool {
    /// A pool of `limit` calls per rolling 24 h.
    pub const fn limited(name: &'static str, limit: u32) -> Self {
        Self {
            name,
            limit: Some(limit),
            per_minute: None,
        }
    }

    /// A pool without a daily limit (still counted, still guarded by the circuit breaker).
    pub const fn unlimited(name: &'static str) -> Self {
        Self {
            name,
            limit: None,
            per_minute: None,
        }
    }

    /// The same pool, spaced to at most `n` calls per minute (0: no spacing).
    pub const fn per_minute(self, n: u32) -> Self {
        Self {
            per_minute: if n == 0 { None } else { Some(n) },
            ..self
        }
    }
}

/// What one run knows about one pool.
#[derive(Debug, Default)]
struct PoolRun {
    /// Why the pool is stopped for the rest of the run.
    stopped: Option<String>,
    /// The current run of failures of one kind: (kind, how many in a row).
    streak: Option<(String, u32)>,
    /// When the calls of the last minute were admitted (pools with `per_minute`).
    recent: VecDeque<Instant>,
    /// One admission at a time: requests in flight at once never overspend a budget.
    gate: Arc<tokio::sync::Mutex<()>>,
}

/// Per-connector call accounting for one run. Cheap to clone; clones share the accounting.
#[derive(Clone)]
pub struct Budget {
    store: Store,
    namespace: String,
    clock: Arc<dyn Clock>,
    calls: CallCounter,
    pools: Arc<Mutex<BTreeMap<&'static str, PoolRun>>>,
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
            calls: CallCounter::default(),
            pools: Default::default(),
        }
    }

    /// Every request this run put on the wire, in all pools.
    pub fn calls(&self) -> &CallCounter {
        &self.calls
    }

    /// Calls recorded against `pool` in the last 24 h.
    pub async fn used_24h(&self, pool: &Pool) -> Result<u32, KriError> {
        let since = self.clock.now() - Duration::hours(24);
        Ok(self.store.calls_since(&self.namespace, pool.name, since).await?)
    }

    fn with_pool<R>(&self, pool: &Pool, f: impl FnOnce(&mut PoolRun) -> R) -> R {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        f(pools.entry(pool.name).or_default())
    }

    /// Whether `pool` is stopped for the rest of this run (throttled, budget used up, or too
    /// many failures in a row).
    pub fn is_stopped(&self, pool: &Pool) -> bool {
        self.with_pool(pool, |p| p.stopped.is_some())
    }

    /// Stop `pool` for this run, saying why once (requests in flight may stop it again).
    fn stop(&self, pool: &Pool, why: String) {
        let first = self.with_pool(pool, |p| {
            let first = p.stopped.is_none();
            if first {
                p.stopped = Some(why.clone());
            }
            first
        });
        if first {
            tracing::warn!(pool = pool.name, "{why}");
        }
    }

    /// Let one request go on the wire: refused when the pool is stopped or its 24 h budget is
    /// used up; otherwise counted for the run and recorded against the pool.
    pub async fn admit(&self, pool: &Pool, endpoint: &str) -> Result<(), HttpError> {
        let not_called = |reason: String| HttpError::NotCalled {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let gate = self.with_pool(pool, |p| p.gate.clone());
        let _admitting = gate.lock().await;
        if let Some(why) = self.with_pool(pool, |p| p.stopped.clone()) {
            return Err(not_called(why));
        }
        if let Some(per_minute) = pool.per_minute {
            self.make_room(pool, per_minute).await;
        }
        if let Some(limit) = pool.limit {
            let used = self
                .used_24h(pool)
                .await
                .map_err(|e| not_called(format!("the call budget could not be read: {e}")))?;
            if used >= limit {
                let why = format!(
                    "the `{}` pool allows {limit} calls per rolling 24 h and {used} were made in the last 24 h; \
                     kri stopped calling it for this run and keeps the last good values",
                    pool.name
                );
                self.stop(pool, why.clone());
                return Err(not_called(why));
            }
        }
        self.record(pool)
            .await
            .map_err(|e| not_called(format!("the call could not be recorded: {e}")))?;
        self.calls.add();
        Ok(())
    }

    /// Wait until fewer than `per_minute` calls were admitted in the last minute, then take a slot.
    async fn make_room(&self, pool: &Pool, per_minute: u32) {
        let minute = std::time::Duration::from_secs(60);
        loop {
            let wait = self.with_pool(pool, |p| {
                let now = Instant::now();
                while p.recent.front().is_some_and(|t| now.duration_since(*t) >= minute) {
                    p.recent.pop_front();
                }
                if p.recent.len() < per_minute as usize {
                    p.recent.push_back(now);
                    return None;
                }
                p.recent.front().map(|t| minute.saturating_sub(now.duration_since(*t)))
            });
            let Some(wait) = wait else { return };
            tracing::info!(
                pool = pool.name,
                per_minute,
                wait_s = wait.as_secs(),
                "the pool's per-minute limit is reached, waiting"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Learn from the outcome of one logical call (after its retries): success ends a streak of
    /// failures; a 429 on a pool with a daily limit stops it; the same failure
    /// [`BREAKER_THRESHOLD`] times in a row stops it. A 429 comes back explaining what it means.
    pub fn settle<T>(&self, pool: &Pool, result: Result<T, HttpError>) -> Result<T, HttpError> {
        let e = match result {
            Ok(v) => {
                self.with_pool(pool, |p| p.streak = None);
                return Ok(v);
            }
            Err(e) => e,
        };
        if let (HttpError::Throttled { endpoint, .. }, Some(limit)) = (&e, pool.limit) {
            let detail = format!(
                "the `{}` pool allows {limit} calls per rolling 24 h per credential, so it may stay throttled for \
                 up to 24 h; kri stopped calling it for this run and keeps the last good values",
                pool.name
            );
            self.stop(
                pool,
                format!("the `{}` pool is throttled (HTTP 429 on {endpoint})", pool.name),
            );
            return Err(HttpError::Throttled {
                endpoint: endpoint.clone(),
                detail,
            });
        }
        // The host does not resolve, or its certificate is refused: the next call would fail the
        // same way, so none is made.
        if let HttpError::Unreachable { detail, .. } = &e {
            self.stop(
                pool,
                format!("kri stopped calling the `{}` pool for this run: {detail}", pool.name),
            );
            return Err(e);
        }
        let Some(kind) = e.kind() else {
            if !matches!(e, HttpError::NotCalled { .. }) {
                self.with_pool(pool, |p| p.streak = None);
            }
            return Err(e);
        };
        let count = self.with_pool(pool, |p| {
            let n = match &p.streak {
                Some((k, n)) if *k == kind => n + 1,
                _ => 1,
            };
            p.streak = Some((kind.clone(), n));
            n
        });
        if count >= BREAKER_THRESHOLD {
            self.stop(
                pool,
                format!(
                    "kri stopped calling the `{}` pool for this run after {count} failures in a row ({kind}; last: {e})",
                    pool.name
                ),
            );
        }
        Err(e)
    }

    async fn record(&self, pool: &Pool) -> Result<(), KriError> {
        Ok(self
            .store
            .record_call(&self.namespace, pool.name, self.clock.now())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const POOL: Pool = Pool::limited("siem", 3);

    fn budget() -> (Budget, ManualClock) {
        let clock = ManualClock::new(crate::testing::fixed_now());
        (
            Budget::new(Store::in_memory().unwrap(), "tap", Arc::new(clock.clone())),
            clock,
        )
    }

    fn status(code: u16) -> HttpError {
        HttpError::Status {
            endpoint: "GET /x".into(),
            status: code,
            excerpt: String::new(),
        }
    }

    #[tokio::test]
    async fn calls_count_over_a_rolling_24_hours() {
        let (b, clock) = budget();
        for _ in 0..3 {
            b.admit(&POOL, "GET /x").await.unwrap();
        }
        assert_eq!(b.used_24h(&POOL).await.unwrap(), 3);
        assert_eq!(b.calls().get(), 3);
        let e = b.admit(&POOL, "GET /x").await.unwrap_err();
        assert!(e.to_string().contains("3 were made in the last 24 h"), "{e}");
        assert_eq!(b.calls().get(), 3, "a refused call is not on the wire");
        clock.advance(Duration::hours(24) + Duration::seconds(1));
        let fresh = Budget::new(b.store.clone(), "tap", Arc::new(clock.clone()));
        assert_eq!(fresh.used_24h(&POOL).await.unwrap(), 0);
        fresh.admit(&POOL, "GET /x").await.unwrap();
    }

    #[tokio::test]
    async fn a_429_on_a_daily_pool_stops_it_and_says_why() {
        let (b, _) = budget();
        let big = Pool::limited("siem", 1800);
        b.admit(&big, "GET /v2/siem/all").await.unwrap();
        let e = b
            .settle::<()>(
                &big,
                Err(HttpError::Throttled {
                    endpoint: "GET /v2/siem/all".into(),
                    detail: String::new(),
                }),
            )
            .unwrap_err();
        assert!(e.to_string().contains("up to 24 h"), "{e}");
        let e = b.admit(&big, "GET /v2/siem/all").await.unwrap_err();
        assert!(matches!(e, HttpError::NotCalled { .. }), "{e:?}");
        assert_eq!(b.used_24h(&big).await.unwrap(), 1);
        b.admit(&Pool::limited("people", 50), "GET /p").await.unwrap();
    }

    #[tokio::test]
    async fn the_same_failure_three_times_in_a_row_stops_the_pool_and_a_success_resets_it() {
        let (b, _) = budget();
        let pool = Pool::unlimited("efd");
        for _ in 0..2 {
            assert!(b.settle::<()>(&pool, Err(status(503))).is_err());
        }
        b.settle(&pool, Ok(())).unwrap();
        assert!(b.settle::<()>(&pool, Err(status(503))).is_err());
        assert!(b.settle::<()>(&pool, Err(status(502))).is_err(), "another kind");
        assert!(!b.is_stopped(&pool));
        for _ in 0..2 {
            assert!(b.settle::<()>(&pool, Err(status(502))).is_err());
        }
        assert!(b.is_stopped(&pool));
        let e = b.admit(&pool, "GET /x").await.unwrap_err().to_string();
        assert!(e.contains("3 failures in a row (HTTP 502"), "{e}");
        let nf = HttpError::NotFound {
            endpoint: "GET /y".into(),
            excerpt: String::new(),
        };
        let other = Pool::unlimited("campaign");
        for _ in 0..5 {
            assert!(b.settle::<()>(&other, Err(nf.clone())).is_err());
        }
        assert!(!b.is_stopped(&other), "404 is an answer, not a failure of the API");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn requests_in_flight_at_once_never_overspend_a_budget() {
        let (b, _) = budget();
        let pool = Pool::limited("campaign-ids", 50);
        let tasks: Vec<_> = (0..80)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move { b.admit(&pool, "GET /x").await.is_ok() })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            admitted += usize::from(t.await.unwrap());
        }
        assert_eq!(admitted, 50);
        assert_eq!(b.used_24h(&pool).await.unwrap(), 50);
    }

    #[tokio::test(start_paused = true)]
    async fn a_per_minute_pool_spreads_calls_over_the_minute() {
        let (b, _) = budget();
        let pool = Pool::unlimited("ctr").per_minute(2);
        let t0 = Instant::now();
        b.admit(&pool, "GET /x").await.unwrap();
        b.admit(&pool, "GET /x").await.unwrap();
        assert!(t0.elapsed() < std::time::Duration::from_secs(1));
        b.admit(&pool, "GET /x").await.unwrap();
        assert!(t0.elapsed() >= std::time::Duration::from_secs(60));
        assert_eq!(b.calls().get(), 3);
    }
}
