//! Lease rows: who runs a connector on this store right now. The policy (how long a lease lives,
//! when a holder counts as gone) is [`crate::lease`]'s; this is the storage. Taking a lease is a
//! compare-and-swap on its row, atomic on both engines without locking anything.

use chrono::{DateTime, Utc};

use super::sql::{Row, vals};
use super::{Store, StoreError, StoreFailure, fmt_time};

/// How often a lease that changed hands under us is looked at again before giving up.
const TAKE_ATTEMPTS: usize = 8;

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub holder_id: String,
    /// For people: `pid 1234 on host-a (kri run)`.
    pub holder: String,
    pub host: String,
    pub pid: u32,
    pub acquired_at: String,
    pub heartbeat_at: String,
}

impl Store {
    /// Take lease `name` for `claim` unless someone else holds it and `is_free` says their hold
    /// still stands; then return their row. Two takers never both win: the row is created with
    /// `INSERT … ON CONFLICT DO NOTHING`, and taken over only if it is still exactly the row
    /// `is_free` judged (same holder, same heartbeat); a taker that loses either race looks again.
    pub async fn take_lease(
        &self,
        name: &str,
        claim: LeaseRow,
        is_free: impl Fn(&LeaseRow) -> bool + Send + 'static,
    ) -> Result<Option<LeaseRow>, StoreError> {
        const ACTION: &str = "taking a lease";
        for _ in 0..TAKE_ATTEMPTS {
            let current = self
                .query_opt(
                    ACTION,
                    "SELECT holder_id, holder, host, pid, acquired_at, heartbeat_at FROM leases WHERE name = ?1",
                    vals![name],
                    lease_row,
                )
                .await?;
            let taken = match current {
                None => {
                    self.execute(
                        ACTION,
                        "INSERT INTO leases (name, holder_id, holder, host, pid, acquired_at, heartbeat_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (name) DO NOTHING",
                        vals![
                            name,
                            &claim.holder_id,
                            &claim.holder,
                            &claim.host,
                            claim.pid,
                            &claim.acquired_at,
                            &claim.heartbeat_at
                        ],
                    )
                    .await?
                }
                Some(current) => {
                    if current.holder_id != claim.holder_id {
                        if !is_free(&current) {
                            return Ok(Some(current));
                        }
                        tracing::warn!(lease = %name, holder = %current.holder, "taking over a lease whose holder stopped");
                    }
                    // The heartbeat too: a holder that renewed since we read it is alive after all.
                    self.execute(
                        ACTION,
                        "UPDATE leases SET holder_id = ?4, holder = ?5, host = ?6, pid = ?7, acquired_at = ?8,
                                           heartbeat_at = ?9
                         WHERE name = ?1 AND holder_id = ?2 AND heartbeat_at = ?3",
                        vals![
                            name,
                            &current.holder_id,
                            &current.heartbeat_at,
                            &claim.holder_id,
                            &claim.holder,
                            &claim.host,
                            claim.pid,
                            &claim.acquired_at,
                            &claim.heartbeat_at
                        ],
                    )
                    .await?
                }
            };
            if taken == 1 {
                return Ok(None);
            }
            // Another taker changed the row between our read and our write: read it again.
        }
        Err(self.error(
            ACTION,
            StoreFailure::Contended("the lease kept changing hands while this process tried to take it; try again"),
        ))
    }

    /// Renew `holder_id`'s lease; `false` when it is no longer theirs.
    pub async fn renew_lease(&self, name: &str, holder_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.execute(
            "renewing a lease",
            "UPDATE leases SET heartbeat_at = ?3 WHERE name = ?1 AND holder_id = ?2",
            vals![name, holder_id, fmt_time(&at)],
        )
        .await
        .map(|n| n == 1)
    }

    /// Give back `holder_id`'s lease (nothing when it is no longer theirs).
    pub async fn free_lease(&self, name: &str, holder_id: &str) -> Result<(), StoreError> {
        self.execute(
            "releasing a lease",
            "DELETE FROM leases WHERE name = ?1 AND holder_id = ?2",
            vals![name, holder_id],
        )
        .await
        .map(|_| ())
    }
}

fn lease_row(r: &Row) -> Result<LeaseRow, StoreFailure> {
    Ok(LeaseRow {
        holder_id: r.text(0)?,
        holder: r.text(1)?,
        host: r.text(2)?,
        pid: r.u32(3)?,
        acquired_at: r.text(4)?,
        heartbeat_at: r.text(5)?,
    })
}
