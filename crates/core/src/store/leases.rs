//! Lease rows: who runs a connector on this store right now. The policy (how long a lease lives,
//! when a holder counts as gone) is [`crate::lease`]'s; this is the storage, one transaction each.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Store, StoreError, fmt_time};

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
    /// still stands; then return their row. One IMMEDIATE transaction: two takers never both win.
    pub async fn take_lease(
        &self,
        name: &str,
        claim: LeaseRow,
        is_free: impl Fn(&LeaseRow) -> bool + Send + 'static,
    ) -> Result<Option<LeaseRow>, StoreError> {
        let name = name.to_owned();
        self.call("taking a lease", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current = tx
                .query_row(
                    "SELECT holder_id, holder, host, pid, acquired_at, heartbeat_at FROM leases WHERE name = ?1",
                    params![name],
                    |r| {
                        Ok(LeaseRow {
                            holder_id: r.get(0)?,
                            holder: r.get(1)?,
                            host: r.get(2)?,
                            pid: r.get(3)?,
                            acquired_at: r.get(4)?,
                            heartbeat_at: r.get(5)?,
                        })
                    },
                )
                .optional()?;
            if let Some(current) = current
                && current.holder_id != claim.holder_id
            {
                if !is_free(&current) {
                    return Ok(Some(current));
                }
                tracing::warn!(lease = %name, holder = %current.holder, "taking over a lease whose holder stopped");
            }
            tx.execute(
                "INSERT INTO leases (name, holder_id, holder, host, pid, acquired_at, heartbeat_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (name) DO UPDATE SET holder_id = excluded.holder_id, holder = excluded.holder,
                     host = excluded.host, pid = excluded.pid, acquired_at = excluded.acquired_at,
                     heartbeat_at = excluded.heartbeat_at",
                params![
                    name,
                    claim.holder_id,
                    claim.holder,
                    claim.host,
                    claim.pid,
                    claim.acquired_at,
                    claim.heartbeat_at
                ],
            )?;
            tx.commit()?;
            Ok(None)
        })
        .await
    }

    /// Renew `holder_id`'s lease; `false` when it is no longer theirs.
    pub async fn renew_lease(&self, name: &str, holder_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let (name, id, at) = (name.to_owned(), holder_id.to_owned(), fmt_time(&at));
        self.call("renewing a lease", move |c| {
            c.execute(
                "UPDATE leases SET heartbeat_at = ?3 WHERE name = ?1 AND holder_id = ?2",
                params![name, id, at],
            )
            .map(|n| n == 1)
        })
        .await
    }

    /// Give back `holder_id`'s lease (nothing when it is no longer theirs).
    pub async fn free_lease(&self, name: &str, holder_id: &str) -> Result<(), StoreError> {
        let (name, id) = (name.to_owned(), holder_id.to_owned());
        self.call("releasing a lease", move |c| {
            c.execute(
                "DELETE FROM leases WHERE name = ?1 AND holder_id = ?2",
                params![name, id],
            )
            .map(|_| ())
        })
        .await
    }
}
