//! The incremental incident feed: ascending by `createdAt`, paging until a short page, deduped
//! against the ids the feed already delivered, cursor = newest `createdAt` processed.
//!
//! The reference integration moves its cursor to "now" or to the last page's time and so stalls
//! or skips when more than one page of incidents share a window (or one second). Here the cursor
//! is (newest `createdAt` delivered, ids delivered at or after `cursor - fetch_delta`), the next
//! cycle re-queries from the cursor second INCLUSIVE and skips the ids it already has. Ties in
//! the API's order therefore cannot hide or repeat an incident.

use kri_core::events::FeedChange;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, DurationRound, Utc};
use kri_core::store::{StateHandle, StateValue};
use kri_core::{HttpError, KriError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::client::{CtrClient, View, merge_details};
use crate::filters::{Filters, MAX_PAGE, Sort};
use crate::time::filter_time;

/// Never page further than this in one cycle (200 000 rows): a safety net, with a warning.
const MAX_PAGES_PER_CYCLE: u32 = 1000;

/// What the feed remembers between cycles, per fetch state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Cursor {
    /// Newest `createdAt` delivered (RFC 3339).
    pub created_at: Option<DateTime<Utc>>,
    /// Ids delivered whose `createdAt` is inside the next window's look-back, with their time.
    pub seen: BTreeMap<String, Option<DateTime<Utc>>>,
}

impl StateValue for Cursor {
    const VERSION: u32 = 1;
}

/// An incident as stored (`incident/{uuid}`): the API's JSON, merged over time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoredIncident(pub Value);

impl StateValue for StoredIncident {
    const VERSION: u32 = 1;
}

/// The settings of one cycle.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    pub first_fetch: std::time::Duration,
    pub fetch_delta: std::time::Duration,
    pub max_fetch: u32,
    pub fetch_state: String,
    pub enrich: bool,
    pub enrich_concurrency: usize,
}

/// What one cycle produced.
#[derive(Debug, Clone, Default)]
pub struct Cycle {
    /// Incidents new in this cycle (enriched when asked and possible), oldest first.
    pub incidents: Vec<Value>,
    pub warnings: Vec<String>,
    pub cursor: Cursor,
    /// True when `max_fetch` cut the window short: more are waiting for the next cycle.
    pub more: bool,
}

pub fn cursor_key(state: &str) -> String {
    format!("cursor/{state}")
}

pub fn incident_key(id: &str) -> String {
    format!("incident/{id}")
}

/// One feed cycle at `now`. Stores the new incidents and the cursor before returning.
pub async fn cycle(
    client: &CtrClient,
    state: &StateHandle,
    tenant: &str,
    s: &FeedSettings,
    now: DateTime<Utc>,
) -> Result<Cycle, KriError> {
    let key = cursor_key(&s.fetch_state);
    let mut cursor: Cursor = state.get(&key).await?.unwrap_or_default();
    let delta = chrono::Duration::from_std(s.fetch_delta).unwrap_or_default();
    let mut warnings = Vec::new();
    let first = chrono::Duration::from_std(s.first_fetch).unwrap_or(chrono::Duration::days(3));
    let base = match cursor.created_at {
        // A cursor past now (moved there by an item from the future before this was checked)
        // would hide every incident to come: it starts from now again.
        Some(t) if t > now => {
            warnings.push(format!(
                "the feed's cursor was in the future ({}); it starts from now",
                filter_time(&t)
            ));
            now
        }
        Some(t) => t,
        None => back(now, first),
    };
    let start = truncate_to_second(back(base, delta));
    let filters = Filters {
        start: Some(start),
        end: Some(now.max(start)),
        states: vec![s.fetch_state.clone()],
        ..Default::default()
    };
    tracing::info!(start = %filter_time(&start), end = %filter_time(&now), state = %s.fetch_state, "CTR fetch window");

    let end = now.max(start);
    let mut fresh: Vec<Value> = Vec::new();
    let mut more = false;
    let mut row = 0u32;
    let mut pages = 0u32;
    let mut failure: Option<HttpError> = None;
    'pages: loop {
        if pages == MAX_PAGES_PER_CYCLE {
            warnings.push(format!(
                "stopped after {pages} pages in one cycle; the rest comes in the next cycles"
            ));
            more = true;
            break;
        }
        let page = match client.page(&filters, now, row, row + MAX_PAGE, Sort::Asc).await {
            Ok(p) => p,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        pages += 1;
        let total = page.total;
        let rows = page.rows();
        let got = rows.len() as u32;
        for inc in rows {
            let Some(id) = View(&inc).id().map(str::to_owned) else {
                warnings.push("an incident without an id was skipped".into());
                continue;
            };
            if !crate::client::is_uuid(&id) {
                warnings.push(format!("an incident whose id {id:?} is not a UUID was skipped"));
                continue;
            }
            if cursor.seen.contains_key(&id) || fresh.iter().any(|f| View(f).id() == Some(&id)) {
                continue;
            }
            // The API answers for the window asked; a time outside it is impossible (a date in
            // year 9999 moved the cursor there and hid every later incident).
            if let Some(c) = View(&inc).created_at()
                && (c > end || c < start)
            {
                warnings.push(format!(
                    "incident {id:?}: createdAt {} is outside the window asked for ({} to {}); skipped",
                    filter_time(&c),
                    filter_time(&start),
                    filter_time(&end)
                ));
                continue;
            }
            if fresh.len() as u32 >= s.max_fetch {
                more = true;
                break 'pages;
            }
            fresh.push(inc);
        }
        row += got;
        if got < MAX_PAGE || total.is_some_and(|t| u64::from(row) >= t) {
            break;
        }
    }
    // Whatever was read before a failure is delivered and remembered; the error is then raised.

    if s.enrich && !fresh.is_empty() {
        enrich(client, &mut fresh, s.enrich_concurrency, &mut warnings).await;
    }

    // Store (latest version per id, merged into an existing row), then move the cursor.
    let stored = store_incidents(state, tenant, now, &fresh).await?;
    for inc in &fresh {
        let v = View(inc);
        if let Some(id) = v.id() {
            let created = v.created_at();
            if created.is_none() {
                warnings.push(format!("incident {id:?}: createdAt is missing or unreadable"));
            }
            cursor.seen.insert(id.to_owned(), created);
            if let Some(c) = created {
                cursor.created_at = Some(cursor.created_at.map_or(c, |old| old.max(c)));
            }
        }
    }
    if let Some(c) = cursor.created_at {
        let keep_from = truncate_to_second(back(c, delta));
        cursor.seen.retain(|_, t| t.is_none_or(|t| t >= keep_from));
    }
    state.put(now, &key, &cursor).await?;
    tracing::info!(new = stored.len(), more, "CTR fetch cycle done");
    if let Some(e) = failure {
        if fresh.is_empty() {
            return Err(e.into());
        }
        warnings.push(format!(
            "the fetch stopped early ({e}); {} incidents were kept, the rest comes in the next cycle",
            fresh.len()
        ));
        more = true;
    }
    Ok(Cycle {
        incidents: stored,
        warnings,
        cursor,
        more,
    })
}

/// `t − d`, or the earliest time there is (never an overflow, whatever time an API sent).
fn back(t: DateTime<Utc>, d: chrono::Duration) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `t` to the whole second below.
fn truncate_to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::seconds(1)).unwrap_or(t)
}

/// Merge each incident into its stored row (`incident/{uuid}`) and write them in one
/// transaction, with an `incident.created` event for each incident not stored before and an
/// `incident.updated` one for each whose state, dispositions or close changed (the framework's
/// feed interface). Returns the merged rows.
pub async fn store_incidents(
    state: &StateHandle,
    tenant: &str,
    now: DateTime<Utc>,
    incidents: &[Value],
) -> Result<Vec<Value>, KriError> {
    let mut rows: Vec<(String, StoredIncident)> = Vec::new();
    let mut changes = Vec::new();
    for inc in incidents {
        let Some(id) = View(inc).id() else { continue };
        let key = incident_key(id);
        let before = state.get::<StoredIncident>(&key).await?.map(|s| s.0);
        let merged = match &before {
            Some(Value::Object(old)) => {
                let mut old = old.clone();
                if let Value::Object(new) = inc {
                    for (k, v) in new {
                        old.insert(k.clone(), v.clone());
                    }
                }
                Value::Object(old)
            }
            _ => inc.clone(),
        };
        let changed = |b: &Value| {
            ["state", "dispositions", "closedAt"]
                .iter()
                .any(|k| b.get(k) != merged.get(k))
        };
        let created = before.is_none();
        if created || before.as_ref().is_some_and(changed) {
            changes.push(FeedChange {
                id: id.to_owned(),
                created,
                severity: severity(&merged),
                module: "ctr".into(),
                item: summary(&merged),
            });
        }
        rows.push((key, StoredIncident(merged)));
    }
    state.put_feed(now, tenant, &rows, changes).await?;
    Ok(rows.into_iter().map(|(_, v)| v.0).collect())
}

/// An event's severity from the incident's `priority`.
fn severity(incident: &Value) -> &'static str {
    match View(incident).str("priority").map(str::to_ascii_lowercase).as_deref() {
        Some("critical" | "high") => "critical",
        Some("medium") => "warning",
        _ => "info",
    }
}

/// What an incident event carries: the facts a SOC case needs, bounded (the title is the API's
/// defanged one, never `titlePII`).
fn summary(incident: &Value) -> Value {
    let v = View(incident);
    let text = |k: &str| v.str(k).map(|s| kri_core::text::truncate(s, 500));
    serde_json::json!({
        "display_id": incident.get("displayId").filter(|d| d.is_number() || d.is_string()),
        "title": text("title"),
        "state": text("state"),
        "priority": text("priority"),
        "dispositions": incident.get("dispositions").filter(|d| d.is_array()),
        "assigned_team": text("assignedTeamName"),
        "message_count": incident.get("messageCount").filter(|d| d.is_number()),
        "created_at": text("createdAt"),
        "updated_at": text("updatedAt"),
        "closed_at": text("closedAt"),
    })
}

/// One GET per incident, at most `concurrency` at a time, under the client's rate limit. A
/// failure keeps the list data and adds a warning; after a 429 that survives the back-off, the
/// remaining incidents are not enriched (never hammer a throttled API).
pub async fn enrich(client: &CtrClient, incidents: &mut [Value], concurrency: usize, warnings: &mut Vec<String>) {
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let throttled = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, inc) in incidents.iter().enumerate() {
        let Some(id) = View(inc).id().map(str::to_owned) else {
            continue;
        };
        let (client, gate, throttled) = (client.clone(), gate.clone(), throttled.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            if throttled.load(Ordering::Relaxed) {
                return (i, id, Err(None));
            }
            let r = client.get(&id).await;
            if matches!(r, Err(HttpError::Throttled { .. })) {
                throttled.store(true, Ordering::Relaxed);
            }
            (i, id, r.map_err(Some))
        });
    }
    let mut skipped = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, _, Ok(details))) => incidents[i] = merge_details(&incidents[i], &details),
            Ok((_, id, Err(Some(e)))) => {
                warnings.push(format!("incident {id} kept without details: {e}"));
            }
            Ok((_, _, Err(None))) => skipped += 1,
            Err(e) => warnings.push(format!("an enrichment task failed: {e}")),
        }
    }
    if skipped > 0 {
        warnings.push(format!(
            "{skipped} incidents kept without details: CTR throttled enrichment (HTTP 429); \
             use `kri ctr incidents get` later or lower max_fetch"
        ));
    }
}
