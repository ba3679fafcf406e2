//! Acknowledgements: someone has seen a KRI's amber or red band and says why it may stay there
//! for now. Kept with the history (who, why, when, until when); an acknowledgement is in force
//! while the KRI stays in the band it was given for, until `until`, and until it is cleared.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sql::{Filter, Row, vals};
use super::{Store, StoreError, StoreFailure, fmt_time};

/// One acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack {
    pub tenant: String,
    pub slug: String,
    /// The band it was given for.
    pub band: String,
    /// Who gave it.
    pub by: Option<String>,
    pub note: String,
    /// When (RFC 3339).
    pub at: String,
    /// Until when, if it was given for a while.
    pub until: Option<String>,
    /// When it was cleared by hand (`kri ack --clear`), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<String>,
}

const ACK_COLUMNS: &str = "a.tenant, a.slug, a.band, a.by_name, a.note, a.at, a.until, a.cleared_at";

fn ack_row(r: &Row) -> Result<Ack, StoreFailure> {
    Ok(Ack {
        tenant: r.text(0)?,
        slug: r.text(1)?,
        band: r.text(2)?,
        by: r.opt_text(3)?,
        note: r.text(4)?,
        at: r.text(5)?,
        until: r.opt_text(6)?,
        cleared_at: r.opt_text(7)?,
    })
}

impl Store {
    /// Record `ack` (its `at` is now); one in force before it for the same KRI is cleared by it.
    pub async fn acknowledge(&self, ack: &Ack) -> Result<(), StoreError> {
        self.transaction(
            "recording an acknowledgement",
            vec![
                (
                    "UPDATE kri_acks SET cleared_at = ?3 WHERE tenant = ?1 AND slug = ?2 AND cleared_at IS NULL",
                    vals![&ack.tenant, &ack.slug, &ack.at],
                ),
                (
                    "INSERT INTO kri_acks (tenant, slug, at, band, by_name, note, until, cleared_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)
                     ON CONFLICT (tenant, slug, at) DO UPDATE SET band = excluded.band, by_name = excluded.by_name,
                         note = excluded.note, until = excluded.until, cleared_at = NULL",
                    vals![
                        &ack.tenant,
                        &ack.slug,
                        &ack.at,
                        &ack.band,
                        ack.by.as_deref(),
                        &ack.note,
                        ack.until.as_deref()
                    ],
                ),
            ],
        )
        .await
        .map(|_| ())
    }

    /// Clear the acknowledgement of `slug` of `tenant` in force at `at`; how many were.
    pub async fn clear_ack(&self, tenant: &str, slug: &str, at: DateTime<Utc>) -> Result<u64, StoreError> {
        self.execute(
            "clearing an acknowledgement",
            "UPDATE kri_acks SET cleared_at = ?3 WHERE tenant = ?1 AND slug = ?2 AND cleared_at IS NULL",
            vals![tenant, slug, fmt_time(&at)],
        )
        .await
    }

    /// The acknowledgements in force at `now` (the handle's tenant's, or all): not cleared, not
    /// past `until`, given for the band the KRI is in, and since it entered it.
    pub async fn current_acks(&self, now: DateTime<Utc>) -> Result<Vec<Ack>, StoreError> {
        let mut f = Filter::default();
        f.and(
            "a.cleared_at IS NULL AND (a.until IS NULL OR a.until > {})",
            vals![fmt_time(&now)],
        )
        .and(
            "a.band = l.good_band AND (l.band_since IS NULL OR l.band_since <= a.at)",
            vec![],
        )
        .eq("a.tenant", self.tenant_filter());
        self.query_map(
            "reading acknowledgements",
            &format!(
                "SELECT {ACK_COLUMNS} FROM kri_acks a
                 JOIN kri_latest l ON l.tenant = a.tenant AND l.slug = a.slug{}
                 ORDER BY a.tenant, a.slug",
                f.sql()
            ),
            f.params,
            ack_row,
        )
        .await
    }

    /// Every acknowledgement of `slug` (the handle's tenant's), newest first, at most `limit`.
    pub async fn ack_log(&self, slug: &str, limit: u32) -> Result<Vec<Ack>, StoreError> {
        let mut f = Filter::default();
        f.eq("a.tenant", self.tenant_filter()).eq("a.slug", Some(slug));
        let limit = f.param(i64::from(limit));
        self.query_map(
            "reading acknowledgements",
            &format!(
                "SELECT {ACK_COLUMNS} FROM kri_acks a{} ORDER BY a.at DESC LIMIT {limit}",
                f.sql()
            ),
            f.params,
            ack_row,
        )
        .await
    }
}
