//! The outbox: the events a run produces ([`crate::events`]), computed from what the store
//! knew before the run and written in the run's own transaction, so an event exists exactly
//! when its run does; sinks deliver from here.

use serde_json::Value;

use super::sql::{Statement, vals};
use super::{Store, StoreError, fmt_time};
use crate::events::{Event, EventType, FAILED_AFTER, KriPart};
use crate::kri::{Band, KriStatus};
use crate::report::{ConnectorStatus, RunReport};

pub(super) const INSERT_EVENT: &str =
    "INSERT INTO outbox (id, tenant, type, subject, time, run_id, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

fn band(text: Option<String>) -> Option<Band> {
    match text.as_deref() {
        Some("green") => Some(Band::Green),
        Some("amber") => Some(Band::Amber),
        Some("red") => Some(Band::Red),
        _ => None,
    }
}

impl Store {
    /// The events `run` produces, from the store as it is before `run` is written: band changes
    /// against each KRI's last good band, and failures that reach [`FAILED_AFTER`] in a row (or
    /// end after it). Reads a few rows per KRI and connector of the run.
    pub(super) async fn events_of(&self, run: &RunReport) -> Result<Vec<Event>, StoreError> {
        let mut events = Vec::new();
        for c in &run.connectors {
            let time = fmt_time(&c.finished_at);
            let event = |kind: EventType, subject: &str, kri: Option<KriPart>, connector| Event {
                id: uuid::Uuid::new_v4().to_string(),
                kind,
                time: time.clone(),
                tenant: c.tenant.clone(),
                subject: subject.to_owned(),
                kri,
                connector,
                incident: None,
                run_id: run.run_id.clone(),
            };
            let statuses = self
                .query(
                    "reading a connector's last runs",
                    "SELECT status FROM runs WHERE tenant = ?1 AND module = ?2 ORDER BY started_at DESC LIMIT ?3",
                    vals![&c.tenant, &c.module, FAILED_AFTER as i64],
                )
                .await?;
            let failed_before = statuses
                .iter()
                .take_while(|r| r.text(0).is_ok_and(|s| s == "failed"))
                .count();
            if c.status == ConnectorStatus::Failed && failed_before + 1 == FAILED_AFTER {
                events.push(event(
                    EventType::ConnectorFailed,
                    &c.module,
                    None,
                    Some((c.module.clone(), c.error.clone())),
                ));
            }
            for k in &c.kris {
                let known = crate::registry::find_kri(k.slug).map(|(_, kri)| kri);
                let before = self
                    .query(
                        "reading a KRI's last good band",
                        "SELECT l.good_band, g.value FROM kri_latest l LEFT JOIN kri_values g ON g.id = l.good_id
                         WHERE l.tenant = ?1 AND l.slug = ?2",
                        vals![&c.tenant, k.slug],
                    )
                    .await?;
                let (from, previous_value) = match before.first() {
                    Some(r) => (
                        band(r.opt_text(0).map_err(|e| self.error("reading a band", e))?),
                        r.opt_real(1).unwrap_or(None),
                    ),
                    None => (None, None),
                };
                let part = |from: Option<Band>, to: Option<Band>| KriPart {
                    slug: k.slug.to_owned(),
                    title: k.title.clone(),
                    module: c.module.clone(),
                    value: k.value,
                    previous_value,
                    from,
                    to,
                    amber: k.thresholds.map(|t| t.amber),
                    red: k.thresholds.map(|t| t.red),
                    direction: known.map(|x| x.direction()),
                    owner: k.owner.clone(),
                    action: k.action.clone(),
                };
                // A change of band: against the last good band; a first green value is none.
                if let Some(to) = k.band
                    && Some(to) != from
                    && !(from.is_none() && to == Band::Green)
                {
                    events.push(event(EventType::BandChanged, k.slug, Some(part(from, Some(to))), None));
                }
                let statuses = self
                    .query(
                        "reading a KRI's last statuses",
                        "SELECT status FROM kri_values WHERE tenant = ?1 AND slug = ?2 ORDER BY id DESC LIMIT ?3",
                        vals![&c.tenant, k.slug, FAILED_AFTER as i64],
                    )
                    .await?;
                let failed_before = statuses
                    .iter()
                    .take_while(|r| r.text(0).is_ok_and(|s| s == "failed"))
                    .count();
                match k.status {
                    KriStatus::Failed if failed_before + 1 == FAILED_AFTER => {
                        let mut p = part(from, None);
                        p.value = None;
                        events.push(event(EventType::KriFailed, k.slug, Some(p), None));
                    }
                    KriStatus::Ok if failed_before >= FAILED_AFTER => {
                        events.push(event(EventType::KriRecovered, k.slug, Some(part(from, k.band)), None));
                    }
                    _ => {}
                }
                if self.value_events && k.value.is_some() {
                    events.push(event(EventType::KriValue, k.slug, Some(part(from, k.band)), None));
                }
            }
        }
        Ok(events)
    }

    /// Events in the order they were written, after `after` (a position this returned; 0 for
    /// the first), at most `limit`: (position, event JSON).
    pub async fn outbox(&self, after: i64, limit: u32) -> Result<Vec<(i64, Value)>, StoreError> {
        self.scan_map(
            "reading the outbox",
            "SELECT seq, body FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            vals![after, i64::from(limit)],
            |r| {
                let body = r.text(1)?;
                Ok((r.int(0)?, serde_json::from_str(&body).unwrap_or(Value::Null)))
            },
        )
        .await
    }
}

/// What a sink with `for` or `repeat_every` knows of one KRI: the band it is in and for how
/// many runs in a row, the band last sent and when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notice {
    pub band: String,
    pub runs: i64,
    pub sent: Option<String>,
    pub sent_at: Option<String>,
}

/// [`Notice`]s by (tenant, slug).
pub type Notices = std::collections::HashMap<(String, String), Notice>;

fn notice_statements(sink: &str, notices: &Notices) -> Vec<Statement> {
    notices
        .iter()
        .map(|((tenant, slug), n)| {
            (
                "INSERT INTO sink_kri (sink, tenant, slug, band, runs, sent, sent_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (sink, tenant, slug) DO UPDATE SET band = excluded.band, runs = excluded.runs,
                     sent = excluded.sent, sent_at = excluded.sent_at",
                vals![
                    sink,
                    tenant,
                    slug,
                    &n.band,
                    n.runs,
                    n.sent.as_deref(),
                    n.sent_at.as_deref()
                ],
            )
        })
        .collect()
}

/// Where a sink is in the outbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SinkProgress {
    /// Every event up to this position is delivered, dead or not for this sink.
    pub done_to: i64,
    pub delivered: i64,
    /// Failed attempts at the current batch, and when the next may start.
    pub attempts: i64,
    pub next_at: Option<String>,
    pub last_error: Option<String>,
    /// Events given up on.
    pub dead: i64,
}

impl Store {
    pub async fn sink_progress(&self, sink: &str) -> Result<SinkProgress, StoreError> {
        let rows = self
            .query(
                "reading a sink's progress",
                "SELECT done_to, delivered, attempts, next_at, last_error,
                        (SELECT COUNT(*) FROM sink_dead d WHERE d.sink = ?1)
                 FROM sink_progress WHERE sink = ?1",
                vals![sink],
            )
            .await?;
        let dead = || async {
            self.query_map(
                "counting a sink's dead events",
                "SELECT COUNT(*) FROM sink_dead WHERE sink = ?1",
                vals![sink],
                |r| r.int(0),
            )
            .await
        };
        let Some(r) = rows.first() else {
            return Ok(SinkProgress {
                dead: dead().await?.first().copied().unwrap_or(0),
                ..SinkProgress::default()
            });
        };
        let read = |e| self.error("reading a sink's progress", e);
        Ok(SinkProgress {
            done_to: r.int(0).map_err(read)?,
            delivered: r.int(1).map_err(read)?,
            attempts: r.int(2).map_err(read)?,
            next_at: r.opt_text(3).map_err(read)?,
            last_error: r.opt_text(4).map_err(read)?,
            dead: r.int(5).map_err(read)?,
        })
    }

    /// The sink is done up to `to`, `delivered` more of them delivered; its failure (if any) is
    /// over. `notices`: what it now knows per KRI, written with the cursor (one transaction).
    pub async fn sink_done(&self, sink: &str, to: i64, delivered: i64, notices: &Notices) -> Result<(), StoreError> {
        let mut statements = vec![(
            "INSERT INTO sink_progress (sink, done_to, delivered, attempts, next_at, last_error)
             VALUES (?1, ?2, ?3, 0, NULL, NULL)
             ON CONFLICT (sink) DO UPDATE SET done_to = excluded.done_to,
                 delivered = sink_progress.delivered + excluded.delivered, attempts = 0, next_at = NULL,
                 last_error = NULL",
            vals![sink, to, delivered],
        )];
        statements.extend(notice_statements(sink, notices));
        self.transaction("recording a sink's delivery", statements)
            .await
            .map(|_| ())
    }

    /// What `sink` knows per KRI (for `for` and `repeat_every`), by (tenant, slug).
    pub async fn sink_notices(&self, sink: &str) -> Result<Notices, StoreError> {
        let rows = self
            .query_map(
                "reading what a sink sent per KRI",
                "SELECT tenant, slug, band, runs, sent, sent_at FROM sink_kri WHERE sink = ?1",
                vals![sink],
                |r| {
                    Ok((
                        (r.text(0)?, r.text(1)?),
                        Notice {
                            band: r.text(2)?,
                            runs: r.int(3)?,
                            sent: r.opt_text(4)?,
                            sent_at: r.opt_text(5)?,
                        },
                    ))
                },
            )
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// A failed attempt: tried again at `next_at`.
    pub async fn sink_failed(&self, sink: &str, attempts: i64, next_at: &str, error: &str) -> Result<(), StoreError> {
        self.execute(
            "recording a sink's failure",
            "INSERT INTO sink_progress (sink, done_to, delivered, attempts, next_at, last_error)
             VALUES (?1, 0, 0, ?2, ?3, ?4)
             ON CONFLICT (sink) DO UPDATE SET attempts = excluded.attempts, next_at = excluded.next_at,
                 last_error = excluded.last_error",
            vals![sink, attempts, next_at, crate::secret::scrub(error)],
        )
        .await
        .map(|_| ())
    }

    /// Give up on the events at `seqs` (with why), and go on after `to` (with what the sink now
    /// knows per KRI).
    pub async fn sink_dead(
        &self,
        sink: &str,
        seqs: &[i64],
        error: &str,
        at: &str,
        to: i64,
        notices: &Notices,
    ) -> Result<(), StoreError> {
        let error = crate::secret::scrub(error);
        let mut statements: Vec<Statement> = seqs
            .iter()
            .map(|seq| {
                (
                    "INSERT INTO sink_dead (sink, seq, error, at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    vals![sink, *seq, &error, at],
                )
            })
            .collect();
        statements.push((
            "INSERT INTO sink_progress (sink, done_to, delivered, attempts, next_at, last_error)
             VALUES (?1, ?2, 0, 0, NULL, ?3)
             ON CONFLICT (sink) DO UPDATE SET done_to = excluded.done_to, attempts = 0, next_at = NULL,
                 last_error = excluded.last_error",
            vals![sink, to, &error],
        ));
        statements.extend(notice_statements(sink, notices));
        self.transaction("recording a sink's dead events", statements)
            .await
            .map(|_| ())
    }
}

impl Store {
    /// The events `sink` gave up on, oldest first (at most 10,000).
    pub async fn sink_dead_events(&self, sink: &str) -> Result<Vec<(i64, Value)>, StoreError> {
        self.query_map(
            "reading a sink's dead events",
            "SELECT o.seq, o.body FROM sink_dead d JOIN outbox o ON o.seq = d.seq WHERE d.sink = ?1 ORDER BY o.seq
             LIMIT 10000",
            vals![sink],
            |r| {
                let body = r.text(1)?;
                Ok((r.int(0)?, serde_json::from_str(&body).unwrap_or(Value::Null)))
            },
        )
        .await
    }

    /// These dead events of `sink` arrived after all: off the dead list.
    pub async fn sink_undead(&self, sink: &str, seqs: &[i64]) -> Result<(), StoreError> {
        let statements: Vec<Statement> = seqs
            .iter()
            .map(|seq| ("DELETE FROM sink_dead WHERE sink = ?1 AND seq = ?2", vals![sink, *seq]))
            .collect();
        self.transaction("taking events off a sink's dead list", statements)
            .await
            .map(|_| ())
    }
}

/// On PostgreSQL, transactions that write events take turns (a lock held to their commit), so
/// positions in the outbox are given in commit order: a deliverer that has read up to position
/// N never sees a lower one commit later and skip it. (SQLite has one writer at a time anyway.)
const OUTBOX_TURN: &str = "SELECT pg_advisory_xact_lock(7742113351227683938)"; // "kri_outb"

impl Store {
    /// The statements that write `events`, last in a transaction (so the turn is held briefly).
    pub(super) fn outbox_statements(&self, events: &[Event]) -> Vec<Statement> {
        let mut out = Vec::with_capacity(events.len() + 1);
        if !events.is_empty() && matches!(self.backend, super::Backend::Postgres { .. }) {
            out.push((OUTBOX_TURN, vals![]));
        }
        out.extend(statements(events));
        out
    }
}

/// The statements that write `events`.
fn statements(events: &[Event]) -> Vec<Statement> {
    events
        .iter()
        .map(|e| {
            (
                INSERT_EVENT,
                vals![
                    &e.id,
                    &e.tenant,
                    e.kind.as_str(),
                    &e.subject,
                    &e.time,
                    &e.run_id,
                    crate::secret::scrub(&e.to_json().to_string())
                ],
            )
        })
        .collect()
}
