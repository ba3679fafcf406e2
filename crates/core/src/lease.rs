//! One writer per store per connector: a run holds its connector's lease for as long as it runs.
//! A second `kri` process on the same store waits for it (bounded) or is refused with a message
//! that says who holds it, so two runs never read the same windows twice or spend one rate-limit
//! pool twice.
//!
//! A lease is a row in the store kept alive by heartbeats. A holder that dies without releasing
//! it (kill -9, power cut) loses it when its heartbeats stop for [`LEASE_TTL`], or at once when
//! it ran on this host and its process is gone.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::store::leases::LeaseRow;
use crate::store::{Store, StoreError, fmt_time};

/// A lease whose heartbeat is older than this is free.
pub const LEASE_TTL: Duration = Duration::from_secs(60);
/// How often a holder renews its lease.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often a waiting process looks again.
const POLL: Duration = Duration::from_millis(500);

/// Who holds a lease, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// For people: `pid 1234 on host-a (kri run)`.
    pub holder: String,
    pub acquired_at: String,
    pub heartbeat_at: String,
}

/// Why a lease could not be taken.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "the `{name}` connector is being run by {} since {} (last heartbeat {}); \
         wait for that run to finish (or stop it), or give `kri run --wait` a longer time",
        .holder.holder, .holder.acquired_at, .holder.heartbeat_at
    )]
    Held { name: String, holder: Holder },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This process, as a lease holder.
#[derive(Debug, Clone)]
struct Me {
    id: String,
    text: String,
    host: String,
    pid: u32,
}

impl Me {
    fn new(what: &str) -> Self {
        let host = hostname();
        let pid = std::process::id();
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Self {
            id: format!("{host}/{pid}/{nonce}"),
            text: format!("pid {pid} on {host} ({what})"),
            host,
            pid,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this host".into())
}

/// Whether process `pid` on this host is gone (only knowable where /proc exists).
fn process_is_gone(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// A held lease. Release it with [`Lease::release`]; dropping it stops the heartbeats and frees
/// it in the background.
#[derive(Debug)]
pub struct Lease {
    store: Store,
    name: String,
    me: Me,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Take the lease `name` for `what` (e.g. `kri run`), waiting up to `wait` for its holder.
    pub async fn acquire(
        store: &Store,
        name: &str,
        what: &str,
        clock: Arc<dyn Clock>,
        wait: Duration,
    ) -> Result<Lease, LeaseError> {
        let me = Me::new(what);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match try_take(store, name, &me, clock.now()).await? {
                None => break,
                Some(holder) if tokio::time::Instant::now() >= deadline => {
                    return Err(LeaseError::Held {
                        name: name.to_owned(),
                        holder,
                    });
                }
                Some(holder) => {
                    tracing::info!(lease = name, holder = %holder.holder, "waiting for the running holder");
                    tokio::time::sleep(POLL).await;
                }
            }
        }
        let heartbeat = tokio::spawn(beat(store.clone(), name.to_owned(), me.id.clone(), clock));
        Ok(Lease {
            store: store.clone(),
            name: name.to_owned(),
            me,
            heartbeat,
        })
    }

    /// Give the lease back.
    pub async fn release(self) {
        self.heartbeat.abort();
        if let Err(e) = free(&self.store, &self.name, &self.me.id).await {
            tracing::warn!(lease = %self.name, "could not release the lease (it expires by itself): {e}");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (store, name, id) = (self.store.clone(), self.name.clone(), self.me.id.clone());
            rt.spawn(async move {
                let _ = free(&store, &name, &id).await;
            });
        }
    }
}

async fn beat(store: Store, name: String, id: String, clock: Arc<dyn Clock>) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        match store.renew_lease(&name, &id, clock.now()).await {
            Ok(true) => {}
            Ok(false) => tracing::error!(lease = %name, "the lease was taken over by another process"),
            Err(e) => tracing::warn!(lease = %name, "could not renew the lease: {e}"),
        }
    }
}

/// Take the lease when it is free (absent, expired, or its holder's process is gone); otherwise
/// say who holds it.
async fn try_take(store: &Store, name: &str, me: &Me, now: DateTime<Utc>) -> Result<Option<Holder>, StoreError> {
    let stale_before = fmt_time(&(now - chrono::Duration::from_std(LEASE_TTL).unwrap_or_default()));
    let claim = LeaseRow {
        holder_id: me.id.clone(),
        holder: me.text.clone(),
        host: me.host.clone(),
        pid: me.pid,
        acquired_at: fmt_time(&now),
        heartbeat_at: fmt_time(&now),
    };
    let (host, pid) = (me.host.clone(), me.pid);
    let held = store
        .take_lease(name, claim, move |current| {
            let expired = current.heartbeat_at < stale_before;
            let dead = current.host == host && current.pid != pid && process_is_gone(current.pid);
            expired || dead
        })
        .await?;
    Ok(held.map(|row| Holder {
        holder: row.holder,
        acquired_at: row.acquired_at,
        heartbeat_at: row.heartbeat_at,
    }))
}

async fn free(store: &Store, name: &str, id: &str) -> Result<(), StoreError> {
    store.free_lease(name, id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::sql::vals;
    use crate::store::test_support::{TestStore, on_both_engines};

    fn clock() -> ManualClock {
        ManualClock::new(crate::testing::fixed_now())
    }

    on_both_engines!(
        a_second_holder_is_refused_with_who_holds_it_then_gets_it_after_release,
        a_lease_whose_heartbeats_stopped_is_taken_over,
        a_lease_of_a_dead_process_on_this_host_is_free_at_once,
    );

    async fn a_second_holder_is_refused_with_who_holds_it_then_gets_it_after_release(store: TestStore) {
        let store = &store.store;
        let c = Arc::new(clock());
        let first = Lease::acquire(store, "tap", "kri run", c.clone(), Duration::ZERO)
            .await
            .unwrap();
        let e = Lease::acquire(store, "tap", "kri daemon", c.clone(), Duration::from_millis(600))
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("`tap` connector is being run by pid") && msg.contains("(kri run)"),
            "{msg}"
        );
        Lease::acquire(store, "efd", "kri run", c.clone(), Duration::ZERO)
            .await
            .expect("another connector is free")
            .release()
            .await;
        first.release().await;
        Lease::acquire(store, "tap", "kri daemon", c, Duration::ZERO)
            .await
            .unwrap();
    }

    async fn a_lease_whose_heartbeats_stopped_is_taken_over(store: TestStore) {
        let store = &store.store;
        let c = clock();
        let held = Lease::acquire(store, "tap", "kri run", Arc::new(c.clone()), Duration::ZERO)
            .await
            .unwrap();
        held.heartbeat.abort();
        std::mem::forget(held);
        c.advance(chrono::Duration::seconds(30));
        assert!(
            Lease::acquire(store, "tap", "kri run", Arc::new(c.clone()), Duration::ZERO)
                .await
                .is_err(),
            "still fresh"
        );
        c.advance(chrono::Duration::seconds(31));
        Lease::acquire(store, "tap", "kri run", Arc::new(c), Duration::ZERO)
            .await
            .expect("expired after the TTL");
    }

    async fn a_lease_of_a_dead_process_on_this_host_is_free_at_once(store: TestStore) {
        if !std::path::Path::new("/proc/self").exists() {
            return;
        }
        store
            .execute(
                "x",
                "INSERT INTO leases (name, holder_id, holder, host, pid, acquired_at, heartbeat_at)
                 VALUES ('tap', 'gone', 'pid 999999999 on x (kri run)', ?1, 999999999, ?2, ?2)",
                vals![hostname(), fmt_time(&crate::testing::fixed_now())],
            )
            .await
            .unwrap();
        Lease::acquire(&store, "tap", "kri run", Arc::new(clock()), Duration::ZERO)
            .await
            .expect("its process is gone");
    }
}
