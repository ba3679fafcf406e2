//! The SIEM feed: which hour slots to read, reading them (streamed), the per-slot facts kept in
//! the store, and the 24 h / 7 d sums over them.

use std::collections::{BTreeMap, HashSet};

use futures_util::StreamExt;

use chrono::{DateTime, Duration, Utc};
use kri_core::store::{StateValue, fmt_time};
use kri_core::window::{ReadMark, Window, WindowRules, last_slots};
use kri_core::{HttpClient, HttpError, KriError, KriResult, Measurement, PlannedCalls, Request, RunContext};
use serde::{Deserialize, Serialize};

use crate::SIEM_POOL;
use crate::siem::{self, WindowCounts};

const PATH: &str = "/v2/siem/all";

/// Windows end this long before now (see [`kri_core::window::WindowRules::lag`]).
pub const LAG: Duration = Duration::minutes(1);
/// How much earlier a window ends when the API still calls it current (once; then the slot
/// waits for the next run, like a window too short to ask for).
const STILL_CURRENT_STEP: Duration = Duration::minutes(5);
const PREFIX: &str = "siem/";

/// What is kept per hour slot: when it was read, and the identities that count.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SlotFacts {
    mark: ReadMark,
    delivered: Vec<String>,
    clicks_permitted: Vec<String>,
    impostor: Vec<String>,
    /// Records in the window's counted arrays, and those that could not be read (skipped).
    /// Absent from facts stored before they were kept: read as 0.
    #[serde(default)]
    records: u64,
    #[serde(default)]
    unreadable: u64,
}

impl StateValue for SlotFacts {
    const VERSION: u32 = 1;
}

impl SlotFacts {
    fn new(counts: WindowCounts, mark: ReadMark) -> Self {
        let hex = |s: HashSet<u128>| {
            let mut v: Vec<String> = s.into_iter().map(|id| format!("{id:032x}")).collect();
            v.sort_unstable();
            v
        };
        Self {
            mark,
            delivered: hex(counts.delivered),
            clicks_permitted: hex(counts.clicks_permitted),
            impostor: hex(counts.impostor),
            records: counts.records,
            unreadable: counts.unreadable,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Pick {
    Delivered24h,
    Clicks7d,
    Impostor7d,
}

pub struct Siem {
    /// Metered in the `siem` pool.
    pub http: HttpClient,
    /// Windows read at once.
    pub concurrency: usize,
    pub lookback: Duration,
    pub safety: Duration,
}

/// The facts after a refresh, and what could not be read.
pub struct Sums {
    now: DateTime<Utc>,
    rules: WindowRules,
    facts: BTreeMap<DateTime<Utc>, SlotFacts>,
    failed: BTreeMap<DateTime<Utc>, KriError>,
    /// The stored facts could not be loaded: nothing can be summed.
    load_error: Option<KriError>,
    /// Slots the API called still current even a few minutes back: nothing to count yet, read
    /// next run (like a sliver too short to ask for).
    deferred: HashSet<DateTime<Utc>>,
}

impl Siem {
    fn rules(&self) -> WindowRules {
        WindowRules {
            slot: Duration::hours(1),
            min_window: Duration::seconds(30),
            max_age: Duration::days(7),
            safety: self.safety,
            lookback: self.lookback,
            lag: LAG,
        }
    }

    /// The stored facts per slot. Rows that cannot be read are dropped (and so read again).
    async fn load(ctx: &RunContext) -> Result<BTreeMap<DateTime<Utc>, SlotFacts>, KriError> {
        let rows: Vec<(String, SlotFacts)> = ctx.state.scan(PREFIX).await?;
        let mut facts = BTreeMap::new();
        for (k, f) in rows {
            match DateTime::parse_from_rfc3339(&k[PREFIX.len()..]) {
                Ok(t) => {
                    facts.insert(t.to_utc(), f);
                }
                Err(e) => ctx.state.drop_unreadable(&k, &format!("not an hour slot: {e}")).await?,
            }
        }
        Ok(facts)
    }

    /// Read the slots the last `count` hours need and have not read (or must re-read), newest
    /// first, `concurrency` at a time; no window starts once the pool is stopped (a throttle,
    /// failures in a row), and those in flight end cleanly. Never reads a window twice in a run.
    pub async fn refresh(&self, ctx: &RunContext, count: u32) -> Sums {
        let now = ctx.clock.now();
        let rules = self.rules();
        let mut failed = BTreeMap::new();
        let mut facts = match Self::load(ctx).await {
            Ok(f) => f,
            Err(e) => {
                return Sums {
                    now,
                    rules,
                    facts: BTreeMap::new(),
                    failed,
                    load_error: Some(e),
                    deferred: HashSet::new(),
                };
            }
        };
        let slots = last_slots(now, Duration::hours(1), count);
        let plan = rules.plan(now, &slots, |s| facts.get(&s).map(|f| f.mark));
        let bar = progress(ctx.interactive, plan.len() as u64);
        let reads = futures_util::stream::iter(plan.iter().copied())
            .map(|w| async move {
                if ctx.budget.is_stopped(&SIEM_POOL) {
                    return (w, None);
                }
                (w, Some(read_settled(&self.http, w, rules.min_window).await))
            })
            .buffer_unordered(self.concurrency.max(1));
        let mut reads = std::pin::pin!(reads);
        let mut deferred = HashSet::new();
        while let Some((w, result)) = reads.next().await {
            bar.set_message(format!("SIEM {}", fmt_time(&w.slot)));
            bar.inc(1);
            // Not started: its pool stopped first (the window counts as not read).
            let Some(result) = result else { continue };
            match result.map_err(KriError::from) {
                Ok(None) => {
                    tracing::info!(slot = %fmt_time(&w.slot), "the API calls this SIEM hour still current: read next run");
                    deferred.insert(w.slot);
                }
                Ok(Some((counts, read_to))) => {
                    if let Some(why) = &counts.first_unreadable {
                        tracing::warn!(
                            slot = %fmt_time(&w.slot),
                            "{} of {} SIEM records could not be read and were skipped; first: {}",
                            counts.unreadable,
                            counts.records,
                            kri_core::text::visible(why)
                        );
                    }
                    let f = SlotFacts::new(counts, ReadMark { read_to, read_at: now });
                    if let Err(e) = ctx.state.put(now, &format!("{PREFIX}{}", fmt_time(&w.slot)), &f).await {
                        failed.insert(w.slot, e);
                    }
                    facts.insert(w.slot, f);
                }
                Err(e) => {
                    // The KRI's message says how many windows failed and why; each one under -v.
                    tracing::debug!(slot = %fmt_time(&w.slot), "SIEM window not read: {e}");
                    failed.insert(w.slot, e);
                }
            }
        }
        bar.finish_and_clear();
        // Slots older than 8 days can no longer be part of a figure.
        let horizon = now - Duration::days(8);
        let stale: Vec<_> = facts.keys().filter(|t| **t < horizon).copied().collect();
        for t in stale {
            facts.remove(&t);
            if let Err(e) = ctx.state.delete_prefix(&format!("{PREFIX}{}", fmt_time(&t))).await {
                tracing::warn!("could not prune old SIEM facts: {e}");
            }
        }
        Sums {
            now,
            rules,
            facts,
            failed,
            load_error: None,
            deferred,
        }
    }

    pub async fn plan(&self, ctx: &RunContext, count: u32) -> Result<PlannedCalls, KriError> {
        let now = ctx.clock.now();
        let facts = Self::load(ctx).await?;
        let plan = self
            .rules()
            .plan(now, &last_slots(now, Duration::hours(1), count), |s| {
                facts.get(&s).map(|f| f.mark)
            });
        Ok(PlannedCalls {
            pool: SIEM_POOL.name,
            limit: SIEM_POOL.limit,
            calls: plan.len() as u32,
            detail: plan
                .iter()
                .map(|w| format!("GET {PATH}?interval={}/{}", fmt_time(&w.start), fmt_time(&w.end)))
                .collect(),
        })
    }
}

impl Sums {
    /// The deduplicated count over the KRI's slots, or why it cannot be trusted.
    pub fn value(&self, pick: Pick) -> KriResult {
        let count = match pick {
            Pick::Delivered24h => 24,
            Pick::Clicks7d | Pick::Impostor7d => 168,
        };
        let slots = last_slots(self.now, Duration::hours(1), count);
        let mut ids: HashSet<&str> = HashSet::new();
        let (mut missing, mut records, mut unreadable) = (0, 0u64, 0u64);
        if let Some(e) = &self.load_error {
            return Err(KriError::Other(format!("the stored SIEM facts could not be read: {e}")));
        }
        let mut errors: Vec<&KriError> = Vec::new();
        for s in &slots {
            if let Some(e) = self.failed.get(s) {
                errors.push(e);
                missing += 1;
                continue;
            }
            match self.facts.get(s) {
                Some(f) => {
                    records += f.records;
                    unreadable += f.unreadable;
                    ids.extend(
                        match pick {
                            Pick::Delivered24h => &f.delivered,
                            Pick::Clicks7d => &f.clicks_permitted,
                            Pick::Impostor7d => &f.impostor,
                        }
                        .iter()
                        .map(String::as_str),
                    )
                }
                // Nothing readable (a sliver under 30 s, or past the 7-day edge): no events to count.
                None if self.deferred.contains(s) || self.rules.window_for(self.now, *s).is_none() => {}
                None => missing += 1,
            }
        }
        match (missing, KriError::telling(errors)) {
            (0, None) if unreadable > 0 => Ok(Measurement::with_warning(
                ids.len() as f64,
                format!(
                    "{} of {} could not be read and {} skipped (an unexpected shape from the API; the log names the \
                     first)",
                    records_text(unreadable),
                    thousands(records),
                    if unreadable == 1 { "was" } else { "were" }
                ),
            )),
            (0, None) => Ok(Measurement::value(ids.len() as f64)),
            (n, Some(e)) => Err(KriError::Other(format!(
                "{n} of {count} hourly SIEM windows could not be read (nothing was counted from them; the next run \
                 reads them again): {e}"
            ))),
            (n, None) => Err(KriError::Other(format!(
                "{n} of {count} hourly SIEM windows have not been read"
            ))),
        }
    }
}

/// "1 record", "2,314 records".
fn records_text(n: u64) -> String {
    format!("{} record{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// 2314 as "2,314".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Read window `w`; when the API answers 400 "The requested interval is still current" (one
/// integration reports it for windows that end at now), once more ending a few minutes
/// earlier. `None`: still current then, or too short to ask for: nothing to count yet.
async fn read_settled(
    http: &HttpClient,
    w: Window,
    min_window: Duration,
) -> Result<Option<(WindowCounts, DateTime<Utc>)>, HttpError> {
    let mut end = w.end;
    for _ in 0..2 {
        match read_window(http, w.start, end).await {
            Ok(counts) => return Ok(Some((counts, end))),
            Err(HttpError::BadRequest { excerpt, .. }) if still_current(&excerpt) => {
                end -= STILL_CURRENT_STEP;
                if end - w.start < min_window {
                    break;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

fn still_current(excerpt: &str) -> bool {
    excerpt.to_ascii_lowercase().contains("still current")
}

/// GET one window and count its records as the body arrives. A 204 is an empty window; a body
/// that is cut off, stalls or does not parse is an error (the window is read again next run),
/// never an empty window.
pub async fn read_window(
    http: &HttpClient,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<WindowCounts, HttpError> {
    let interval = format!("{}/{}", fmt_time(&start), fmt_time(&end));
    let request = Request::get(PATH).query(&[("interval", interval.as_str()), ("format", "json")]);
    let answer = http.stream(request).await?;
    if answer.is_no_content() {
        return http.settle(Ok(WindowCounts::default()));
    }
    let result = count_stream(answer.into_stream(), &interval).await;
    http.settle(result)
}

/// The body goes to a parser on the blocking pool in batches of about [`BATCH`] bytes, through
/// a small bounded channel: parsing never holds up the runtime's threads, the parser wakes once
/// a batch rather than once a network chunk, and at most a few batches wait in memory.
async fn count_stream(
    stream: impl futures_util::Stream<Item = Result<bytes::Bytes, HttpError>>,
    interval: &str,
) -> Result<WindowCounts, HttpError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<bytes::Bytes>>(2);
    let parser = tokio::task::spawn_blocking(move || {
        let mut parser = siem::Parser::default();
        while let Some(batch) = rx.blocking_recv() {
            for chunk in batch {
                parser.feed(&chunk)?;
            }
        }
        parser.finish()
    });
    let mut stream = std::pin::pin!(stream);
    let mut body_error = None;
    let (mut batch, mut size) = (Vec::new(), 0);
    loop {
        let next = stream.next().await;
        if let Some(Ok(chunk)) = &next {
            size += chunk.len();
            batch.push(chunk.clone());
            if size < BATCH {
                continue;
            }
        }
        // A full batch, the end, or an error: hand over what is gathered.
        let full = std::mem::take(&mut batch);
        size = 0;
        // The parser stopped on an error: stop reading (the connection is dropped).
        if !full.is_empty() && tx.send(full).await.is_err() {
            break;
        }
        match next {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                body_error = Some(e);
                break;
            }
            None => break,
        }
    }
    drop(tx);
    let parsed = parser.await;
    // A body that failed on the wire says so, rather than "the JSON ended early".
    if let Some(e) = body_error {
        return Err(e);
    }
    let endpoint = format!("GET {PATH}");
    match parsed {
        Ok(Ok(counts)) => Ok(counts),
        Ok(Err(e)) => Err(HttpError::Decode {
            endpoint,
            detail: format!("{e} (window {interval})"),
        }),
        Err(e) => Err(HttpError::Decode {
            endpoint,
            detail: format!("the parser task failed: {e}"),
        }),
    }
}

/// Bytes handed to the parser at once.
const BATCH: usize = 256 * 1024;

/// A progress bar on stderr for people; hidden for machines and pipes.
pub fn progress(interactive: bool, len: u64) -> indicatif::ProgressBar {
    if !interactive || len < 2 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}
