//! Delivery: each configured sink goes through the outbox from where it stopped, one deliverer
//! at a time (the sink's lease in the store, so N workers on one PostgreSQL store never deliver
//! one event twice at once), in order, in batches. A batch delivered moves the sink's cursor on;
//! a failed one is tried again with back-off, until its oldest event is `max_age` old or the
//! sink says trying again will not help: then its events are dead, with the error.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kri_core::sink::SinkConfig;
use kri_core::store::fmt_time;
use kri_core::{Clock, Lease, Store};

/// Events read from the outbox at once (a batch holds those of them the sink wants).
const BATCH: u32 = 100;
/// First wait after a failed batch; doubles each attempt, at most [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(1);
const MAX_WAIT: Duration = Duration::from_secs(300);

/// What one pass did for one sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sink: String,
    pub delivered: usize,
    pub dead: usize,
    /// The failure that left events waiting, if any.
    pub failing: Option<String>,
}

/// Deliver what each sink has waiting, for at most `budget`: what `kri run` does before it
/// exits, and a service every second. A sink another process is delivering is left to it.
pub async fn deliver(sinks: &[SinkConfig], store: &Store, clock: Arc<dyn Clock>, budget: Duration) -> Vec<Delivered> {
    let deadline = tokio::time::Instant::now() + budget;
    let mut out = Vec::new();
    for s in sinks {
        let Ok(lease) = Lease::acquire(
            store,
            &format!("sink/{}", s.name),
            "delivering events",
            clock.clone(),
            Duration::ZERO,
        )
        .await
        else {
            continue;
        };
        let mut done = Delivered {
            sink: s.name.clone(),
            ..Delivered::default()
        };
        if let Err(e) = one_sink(s, store, clock.as_ref(), deadline, &mut done).await {
            done.failing = Some(format!("the store: {e}"));
        }
        lease.release().await;
        out.push(done);
    }
    out
}

async fn one_sink(
    s: &SinkConfig,
    store: &Store,
    clock: &dyn Clock,
    deadline: tokio::time::Instant,
    done: &mut Delivered,
) -> Result<(), kri_core::store::StoreError> {
    while tokio::time::Instant::now() < deadline {
        let now = clock.now();
        let progress = store.sink_progress(&s.name).await?;
        if let Some(next) = progress.next_at.as_deref().and_then(parse)
            && next > now
        {
            done.failing = progress.last_error;
            return Ok(());
        }
        let batch = store.outbox(progress.done_to, BATCH).await?;
        let Some(last) = batch.last().map(|(seq, _)| *seq) else {
            return Ok(());
        };
        let wanted: Vec<(i64, serde_json::Value)> = batch.into_iter().filter(|(_, e)| s.filter.matches(e)).collect();
        if wanted.is_empty() {
            store.sink_done(&s.name, last, 0).await?;
            continue;
        }
        let events: Vec<serde_json::Value> = wanted.iter().map(|(_, e)| e.clone()).collect();
        let result = match tokio::time::timeout(s.timeout, s.sink.deliver(&events)).await {
            Ok(r) => r,
            Err(_) => Err(kri_core::sink::SinkError::retry(format!(
                "no answer within {} (timeout)",
                humantime::format_duration(s.timeout)
            ))),
        };
        match result {
            Ok(()) => {
                store.sink_done(&s.name, last, events.len() as i64).await?;
                done.delivered += events.len();
            }
            Err(e) => {
                // Dead: all of the batch when trying again cannot help; else the events (at the
                // front: the outbox is in time order) that are max_age old; the rest is tried again.
                let too_old = |ev: &serde_json::Value| {
                    let at = ev["time"].as_str().and_then(parse).unwrap_or(now);
                    (now - at).to_std().unwrap_or_default() >= s.max_age
                };
                let dead: Vec<i64> = if e.permanent {
                    wanted.iter().map(|(seq, _)| *seq).collect()
                } else {
                    wanted
                        .iter()
                        .take_while(|(_, ev)| too_old(ev))
                        .map(|(seq, _)| *seq)
                        .collect()
                };
                if let Some(&newest_dead) = dead.last() {
                    let (why, to) = if e.permanent {
                        (e.message.clone(), last)
                    } else {
                        let max_age = humantime::format_duration(s.max_age);
                        (
                            format!("{} (still failing after max_age {max_age})", e.message),
                            newest_dead,
                        )
                    };
                    store.sink_dead(&s.name, &dead, &why, &fmt_time(&now), to).await?;
                    tracing::warn!(sink = %s.name, "{} events dead: {why}", dead.len());
                    done.dead += dead.len();
                    continue;
                }
                let attempts = progress.attempts + 1;
                let wait = FIRST_WAIT
                    .saturating_mul(1 << attempts.clamp(0, 16) as u32)
                    .min(MAX_WAIT);
                let next = now + chrono::Duration::from_std(wait).unwrap_or_default();
                store
                    .sink_failed(&s.name, attempts, &fmt_time(&next), &e.message)
                    .await?;
                tracing::warn!(sink = %s.name, attempts, "events not delivered, trying again at {}: {}", fmt_time(&next), e.message);
                done.failing = Some(e.message);
                return Ok(());
            }
        }
    }
    Ok(())
}

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc())
}

/// Send `events` to `sink` now, outside the outbox (a test event), within its timeout.
pub async fn deliver_now(sink: &SinkConfig, events: &[serde_json::Value]) -> Result<(), String> {
    match tokio::time::timeout(sink.timeout, sink.sink.deliver(events)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.message),
        Err(_) => Err(format!("no answer within {}", humantime::format_duration(sink.timeout))),
    }
}

/// Try `sink`'s dead events again now, a batch at a time (behind the sink's cursor, so the
/// deliverer never sends them): those that arrive
/// leave the dead list. (delivered, still dead, the last error).
pub async fn retry_dead(
    sink: &SinkConfig,
    store: &Store,
) -> Result<(usize, usize, Option<String>), kri_core::store::StoreError> {
    let dead = store.sink_dead_events(&sink.name).await?;
    let mut delivered = 0;
    let mut error = None;
    for batch in dead.chunks(BATCH as usize) {
        let events: Vec<serde_json::Value> = batch.iter().map(|(_, e)| e.clone()).collect();
        match deliver_now(sink, &events).await {
            Ok(()) => {
                let seqs: Vec<i64> = batch.iter().map(|(seq, _)| *seq).collect();
                store.sink_undead(&sink.name, &seqs).await?;
                delivered += seqs.len();
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Ok((delivered, dead.len() - delivered, error))
}
