//! Delivery: each configured sink goes through the outbox from where it stopped, one deliverer
//! at a time (the sink's lease in the store, so N workers on one PostgreSQL store never deliver
//! one event twice at once), in order, in batches. A batch delivered moves the sink's cursor on;
//! a failed one is tried again with back-off, until its oldest event is `max_age` old or the
//! sink says trying again will not help: then its events are dead, with the error.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kri_core::sink::SinkConfig;
use kri_core::store::{Notices, fmt_time};
use kri_core::{Clock, Lease, Store};
use serde_json::Value;

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
    /// The pass's time ran out with events left to send: go on at once.
    pub more: bool,
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
    loop {
        if tokio::time::Instant::now() >= deadline {
            done.more = true;
            return Ok(());
        }
        let now = clock.now();
        let progress = store.sink_progress(&s.name).await?;
        if let Some(next) = progress.next_at.as_deref().and_then(parse)
            && next > now
        {
            done.failing = progress.last_error;
            return Ok(());
        }
        let batch = whole_runs(store.outbox(progress.done_to, BATCH).await?);
        let Some(last) = batch.last().map(|(seq, _)| *seq) else {
            return Ok(());
        };
        let mut notices = if s.shapes_changes() {
            store.sink_notices(&s.name).await?
        } else {
            Notices::new()
        };
        // An acknowledged breach is not repeated.
        let acked: Acked = if s.repeat_every.is_some() {
            store
                .current_acks(now)
                .await?
                .into_iter()
                .map(|a| (a.tenant, a.slug, a.band))
                .collect()
        } else {
            Acked::new()
        };
        let before = notices.clone();
        let wanted = shape(s, batch.clone(), &mut notices, &acked);
        if wanted.is_empty() {
            store.sink_done(&s.name, last, 0, &notices).await?;
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
                store.sink_done(&s.name, last, events.len() as i64, &notices).await?;
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
                    // Done up to `to`: the sink has learnt from the events up to there, no further
                    // (the rest of the batch is read again).
                    if to != last {
                        notices = before;
                        shape(
                            s,
                            batch.into_iter().filter(|(seq, _)| *seq <= to).collect(),
                            &mut notices,
                            &acked,
                        );
                    }
                    store
                        .sink_dead(&s.name, &dead, &why, &fmt_time(&now), to, &notices)
                        .await?;
                    tracing::warn!(sink = %s.name, "{} events dead: {why}", dead.len());
                    done.dead += dead.len();
                    continue;
                }
                let attempts = progress.attempts + 1;
                let wait = kri_core::http::backoff(FIRST_WAIT, attempts.clamp(0, 16) as u32).min(MAX_WAIT);
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
}

/// A full batch ends before the last run it holds began, so one run's events go out together
/// (one message per run); a run with more events than a batch is cut where it must be.
fn whole_runs(mut batch: Vec<(i64, Value)>) -> Vec<(i64, Value)> {
    if batch.len() < BATCH as usize {
        return batch;
    }
    let run = |e: &Value| e["run_id"].as_str().map(str::to_owned);
    let Some(last) = batch.last().and_then(|(_, e)| run(e)) else {
        return batch;
    };
    let keep = batch.iter().rposition(|(_, e)| run(e).as_deref() != Some(&last));
    if let Some(i) = keep {
        batch.truncate(i + 1);
    }
    batch
}

/// The events of `batch` the sink gets. With `for` or `repeat_every`, band changes are made here
/// from each run's `kri.value` events and what the sink saw before (`notices`, updated): a band
/// is sent once it has held `for` runs, and an amber or red one again every `repeat_every`
/// unless it is acknowledged (`acked`).
fn shape(s: &SinkConfig, batch: Vec<(i64, Value)>, notices: &mut Notices, acked: &Acked) -> Vec<(i64, Value)> {
    if !s.shapes_changes() {
        return batch.into_iter().filter(|(_, e)| s.filter.matches(e)).collect();
    }
    let mut out = Vec::new();
    for (seq, e) in batch {
        match e["type"].as_str() {
            Some("kri.band_changed") => {}
            Some("kri.value") => {
                if let Some(change) = notice(s, &e, notices, acked)
                    && s.filter.matches(&change)
                {
                    out.push((seq, change));
                }
                if s.filter.matches(&e) {
                    out.push((seq, e));
                }
            }
            _ if s.filter.matches(&e) => out.push((seq, e)),
            _ => {}
        }
    }
    out
}

/// The breaches acknowledged now: (tenant, slug, band).
type Acked = std::collections::HashSet<(String, String, String)>;

/// One value through the sink's memory of its KRI: the band change (or reminder) to send, if any.
fn notice(s: &SinkConfig, value: &Value, notices: &mut Notices, acked: &Acked) -> Option<Value> {
    let k = &value["kri"];
    let band = k["to"].as_str()?.to_owned();
    let key = (value["tenant"].as_str()?.to_owned(), k["slug"].as_str()?.to_owned());
    let time = value["time"].as_str()?;
    let n = notices.entry(key.clone()).or_default();
    if n.band == band {
        n.runs += 1;
    } else {
        n.band = band.clone();
        n.runs = 1;
    }
    let breach = band == "amber" || band == "red";
    let (repeat, send) = if n.runs >= i64::from(s.hold) && n.sent.as_deref() != Some(band.as_str()) {
        // The first green value of a KRI is no change.
        (false, n.sent.is_some() || breach)
    } else if n.sent.as_deref() == Some(band.as_str()) && breach {
        let due = s.repeat_every.is_some_and(|every| {
            let since = n.sent_at.as_deref().and_then(parse).zip(parse(time));
            since.is_some_and(|(at, now)| (now - at).to_std().unwrap_or_default() >= every)
        });
        let seen = acked.contains(&(key.0.clone(), key.1.clone(), band.clone()));
        (true, due && !seen)
    } else {
        (false, false)
    };
    if !send {
        return None;
    }
    let from = if repeat {
        Value::from(band.as_str())
    } else {
        n.sent.clone().map_or(Value::Null, Value::from)
    };
    n.sent = Some(band.clone());
    n.sent_at = Some(time.to_owned());
    let mut change = value.clone();
    change["type"] = Value::from("kri.band_changed");
    change["id"] = Value::from(derived_id(value["id"].as_str().unwrap_or_default()));
    change["kri"]["from"] = from;
    change["severity"] = Value::from(match band.as_str() {
        "red" => "critical",
        "amber" => "warning",
        _ => "info",
    });
    change["repeat"] = Value::from(repeat);
    Some(change)
}

/// The id of the band change made from the value event `id`: the same on every attempt.
fn derived_id(id: &str) -> String {
    let bits = uuid::Uuid::parse_str(id).map(|u| u.as_u128()).unwrap_or_default();
    uuid::Builder::from_random_bytes((bits ^ 0x6b72_695f_6368_616e_6765_0000_0000_0001).to_be_bytes())
        .into_uuid()
        .to_string()
}

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc())
}

/// One sink as `kri sinks`, the dashboard and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SinkStatus {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub delivered: i64,
    /// Events it wants that are not delivered yet (counted up to 10,000).
    pub waiting: i64,
    pub dead: i64,
    /// When the oldest waiting event happened (RFC 3339).
    pub oldest_waiting: Option<String>,
    /// Failed attempts at the waiting batch, and when the next starts.
    pub attempts: i64,
    pub next_at: Option<String>,
    pub last_error: Option<String>,
}

/// Where each sink stands.
pub async fn sink_status(sinks: &[SinkConfig], store: &Store) -> Result<Vec<SinkStatus>, kri_core::store::StoreError> {
    let mut out = Vec::with_capacity(sinks.len());
    for s in sinks {
        let p = store.sink_progress(&s.name).await?;
        let wanted: Vec<(i64, Value)> = shape_preview(s, store.outbox(p.done_to, 10_000).await?);
        out.push(SinkStatus {
            name: s.name.clone(),
            kind: s.kind,
            delivered: p.delivered,
            waiting: wanted.len() as i64,
            dead: p.dead,
            oldest_waiting: wanted.first().and_then(|(_, e)| e["time"].as_str().map(str::to_owned)),
            attempts: p.attempts,
            next_at: p.next_at,
            last_error: p.last_error,
        });
    }
    Ok(out)
}

/// The waiting events a sink wants, as far as can be said without its memory of each KRI: with
/// `for` or `repeat_every`, the values it will look at.
fn shape_preview(s: &SinkConfig, batch: Vec<(i64, Value)>) -> Vec<(i64, Value)> {
    if !s.shapes_changes() {
        return batch.into_iter().filter(|(_, e)| s.filter.matches(e)).collect();
    }
    batch
        .into_iter()
        .filter(|(_, e)| e["type"] == "kri.value" || (e["type"] != "kri.band_changed" && s.filter.matches(e)))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use kri_core::sink::{EventFilter, Sink, SinkError};
    use kri_core::store::Notice;
    use serde_json::json;

    struct Nowhere;

    #[kri_core::async_trait]
    impl Sink for Nowhere {
        async fn deliver(&self, _: &[Value]) -> Result<(), SinkError> {
            Ok(())
        }
    }

    fn sink(hold: u32, repeat_every: Option<Duration>) -> SinkConfig {
        SinkConfig {
            name: "t".into(),
            kind: "file",
            filter: EventFilter {
                events: kri_core::sink::DEFAULT_EVENTS.iter().map(|s| s.to_string()).collect(),
                min_band: kri_core::Band::Amber,
                tenants: None,
                kris: None,
            },
            max_age: Duration::from_secs(86_400),
            timeout: Duration::from_secs(10),
            hold,
            repeat_every,
            sink: Box::new(Nowhere),
        }
    }

    /// A run's `kri.value` event at `minute` minutes past 10:00, in `band`.
    fn value(minute: u32, band: &str) -> Value {
        json!({
            "id": uuid::Uuid::new_v4().to_string(), "type": "kri.value", "tenant": "acme",
            "time": format!("2026-11-23T{:02}:{:02}:00Z", 10 + minute / 60, minute % 60),
            "kri": {"slug": "pp_vap_count", "from": null, "to": band}, "run_id": format!("r{minute}"),
        })
    }

    /// The band changes `bands` (one run each, an hour apart) make: (from, to, repeat).
    fn changes(s: &SinkConfig, bands: &[&str]) -> Vec<(Value, String, bool)> {
        let mut notices = Notices::new();
        let batch: Vec<(i64, Value)> = bands
            .iter()
            .enumerate()
            .map(|(i, b)| (i as i64, value(i as u32 * 60, b)))
            .collect();
        shape(s, batch, &mut notices, &Acked::new())
            .into_iter()
            .map(|(_, e)| {
                assert_eq!(e["type"], "kri.band_changed");
                (
                    e["kri"]["from"].clone(),
                    e["kri"]["to"].as_str().unwrap().to_owned(),
                    e["repeat"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn with_for_a_band_is_sent_once_it_has_held_that_many_runs() {
        let s = sink(3, None);
        let got = changes(
            &s,
            &[
                "green", "amber", "amber", "amber", "red", "amber", "green", "green", "green",
            ],
        );
        assert_eq!(
            got,
            vec![
                (Value::Null, "amber".into(), false),
                (json!("amber"), "green".into(), false)
            ],
            "a first green is no change; one red run between ambers is not sent"
        );
    }

    #[test]
    fn with_repeat_every_a_breach_is_sent_again_while_it_holds() {
        let s = sink(1, Some(Duration::from_secs(2 * 3600)));
        let got = changes(&s, &["red", "red", "red", "red", "amber", "green"]);
        assert_eq!(
            got,
            vec![
                (Value::Null, "red".into(), false),
                (json!("red"), "red".into(), true),
                (json!("red"), "amber".into(), false),
                (json!("amber"), "green".into(), false)
            ],
            "red at 10:00, again at 12:00 (two hours), then the changes"
        );
        // Acknowledged in red: no reminder; its changes still go.
        let acked = Acked::from([("acme".to_owned(), "pp_vap_count".to_owned(), "red".to_owned())]);
        let batch: Vec<(i64, Value)> = ["red", "red", "red", "red", "amber"]
            .iter()
            .enumerate()
            .map(|(i, b)| (i as i64, value(i as u32 * 60, b)))
            .collect();
        let got: Vec<(Value, bool)> = shape(&s, batch, &mut Notices::new(), &acked)
            .into_iter()
            .filter(|(_, e)| e["type"] == "kri.band_changed")
            .map(|(_, e)| (e["kri"]["to"].clone(), e["repeat"].as_bool().unwrap()))
            .collect();
        assert_eq!(got, vec![(json!("red"), false), (json!("amber"), false)]);
    }

    #[test]
    fn what_a_sink_learnt_carries_over_batches_and_ids_are_stable() {
        let s = sink(2, None);
        let mut notices = Notices::new();
        let first = value(0, "red");
        assert!(
            shape(&s, vec![(1, first.clone())], &mut notices, &Acked::new()).is_empty(),
            "one run is not two"
        );
        let second = value(60, "red");
        let sent = shape(&s, vec![(2, second.clone())], &mut notices, &Acked::new());
        assert_eq!(sent.len(), 1);
        let again = shape(
            &s,
            vec![(2, second.clone())],
            &mut Notices::from([(
                ("acme".into(), "pp_vap_count".into()),
                Notice {
                    band: "red".into(),
                    runs: 1,
                    sent: None,
                    sent_at: None,
                },
            )]),
            &Acked::new(),
        );
        assert_eq!(again[0].1["id"], sent[0].1["id"], "a retry sends the same id");
        assert_ne!(sent[0].1["id"], second["id"]);
    }

    #[test]
    fn a_full_batch_keeps_its_last_run_for_the_next() {
        let event = |seq: i64, run: &str| (seq, json!({"run_id": run}));
        let mut batch: Vec<(i64, Value)> = (0..97).map(|i| event(i, "r1")).collect();
        batch.extend((97..100).map(|i| event(i, "r2")));
        assert_eq!(whole_runs(batch).len(), 97);
        let one_run: Vec<(i64, Value)> = (0..100).map(|i| event(i, "r1")).collect();
        assert_eq!(whole_runs(one_run).len(), 100, "a run bigger than a batch is cut");
        assert_eq!(whole_runs(vec![event(0, "r1"), event(1, "r2")]).len(), 2);
    }
}
