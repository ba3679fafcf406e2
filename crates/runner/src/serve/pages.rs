//! What the pages show, read fresh from the store (and the scheduler, when one runs): the
//! dashboard of `GET /` and `kri report --html`, and one KRI's page.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kri_core::report::ValueRow;
use kri_core::store::StoreError;
use kri_core::{Clock, Direction, Kri, RunContext, Store};
use kri_dashboard as page;

use super::scheduler::SlotView;
use crate::config::{Loaded, Module};

/// Days of history on a tile's sparkline.
pub const SPARK_DAYS: i64 = 30;
/// Most values drawn on one chart.
const MAX_POINTS: u32 = 5000;
/// Runs listed on the dashboard.
const RECENT_RUNS: u32 = 20;
/// Items listed per feed.
const FEED_ITEMS: usize = 10;

/// A stored time (RFC 3339) back to a time; `None` for text that is not one.
pub(super) fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc())
}

/// The selected KRIs of the enabled connectors, in registry order.
pub fn selected(loaded: &Loaded) -> impl Iterator<Item = (&Module, &'static dyn Kri)> {
    loaded.modules.iter().filter(|m| m.connector.is_some()).flat_map(|m| {
        m.reg
            .kris
            .iter()
            .filter(|k| m.selected.contains(&k.slug()))
            .map(move |k| (m, *k))
    })
}

async fn tile(
    loaded: &Loaded,
    store: &Store,
    m: &Module,
    k: &dyn Kri,
    since: DateTime<Utc>,
) -> Result<page::Tile, StoreError> {
    let latest = store.values(Some(k.slug().to_owned()), 1).await?.into_iter().next();
    let history = store.series(k.slug(), since, MAX_POINTS).await?;
    let t = loaded.thresholds_for(k);
    Ok(page::Tile {
        slug: k.slug().to_owned(),
        module: m.reg.module.to_owned(),
        meaning: k.meaning().to_owned(),
        unit: k.unit().as_str().to_owned(),
        higher_is_worse: k.direction() == Direction::HigherIsWorse,
        amber: t.amber,
        red: t.red,
        latest: latest.and_then(|v| {
            Some(page::Latest {
                measured_at: parse_time(&v.measured_at)?,
                value: v.value,
                status: v.status,
                band: v.band,
                message: v.message,
            })
        }),
        history: points(&history),
    })
}

fn points(rows: &[ValueRow]) -> Vec<page::Point> {
    rows.iter()
        .filter_map(|r| {
            Some(page::Point {
                at: parse_time(&r.measured_at)?,
                value: r.value.filter(|v| v.is_finite())?,
            })
        })
        .collect()
}

/// The dashboard: tiles, connectors (with the schedule when `slots` is given), runs, feeds.
pub async fn dashboard(
    loaded: &Loaded,
    store: &Store,
    clock: Arc<dyn Clock>,
    slots: Option<&[SlotView]>,
    actions: page::Actions,
) -> Result<page::Dashboard, StoreError> {
    let now = clock.now();
    let since = now - chrono::Duration::days(SPARK_DAYS);
    let mut tiles = Vec::new();
    for (m, k) in selected(loaded) {
        tiles.push(tile(loaded, store, m, k, since).await?);
    }
    let summary = store.run_summary().await?;
    let mut connectors = Vec::new();
    let mut feeds = Vec::new();
    for m in loaded.modules.iter().filter(|m| m.connector.is_some()) {
        let slot = slots.and_then(|s| s.iter().find(|s| s.module == m.reg.module));
        let last = summary
            .iter()
            .find(|s| s.module == m.reg.module)
            .and_then(|s| s.last.as_ref())
            .and_then(|r| {
                Some(page::LastRun {
                    at: parse_time(&r.finished_at)?,
                    status: r.status.clone(),
                    error: r.error.clone(),
                })
            });
        connectors.push(page::ConnectorRow {
            module: m.reg.module.to_owned(),
            description: m.reg.description.to_owned(),
            schedule: m.schedule_text.clone(),
            running: slot.is_some_and(|s| s.running.is_some()),
            last_run: last,
            next_run: slot.and_then(|s| s.next_at),
        });
        if let Some(connector) = &m.connector {
            let ctx = RunContext::new(clock.clone(), store, m.reg.module, false);
            match connector.feed(&ctx, FEED_ITEMS).await {
                Ok(Some(feed)) => feeds.push(page::Feed {
                    module: m.reg.module.to_owned(),
                    title: feed.title,
                    items: feed
                        .items
                        .into_iter()
                        .map(|i| page::FeedItem {
                            id: i.id,
                            title: i.title,
                            at: i.at,
                            fields: i.fields,
                        })
                        .collect(),
                }),
                Ok(None) => {}
                Err(e) => tracing::warn!(module = m.reg.module, "cannot read the feed for the page: {e}"),
            }
        }
    }
    let runs = store
        .history(RECENT_RUNS, None)
        .await?
        .into_iter()
        .map(|r| page::RunRow {
            run_id: r.run_id,
            module: r.module,
            started_at: r.started_at,
            finished_at: r.finished_at,
            status: r.status,
            rows_written: r.rows_written,
            api_calls: r.api_calls,
            error: r.error,
        })
        .collect();
    Ok(page::Dashboard {
        generated_at: now,
        tiles,
        connectors,
        runs,
        feeds,
        actions,
    })
}

/// One KRI's page: all its stored history. `None`: not a selected KRI of an enabled connector.
pub async fn kri(
    loaded: &Loaded,
    store: &Store,
    clock: &dyn Clock,
    slug: &str,
) -> Result<Option<page::KriPage>, StoreError> {
    let Some((m, k)) = selected(loaded).find(|(_, k)| k.slug() == slug) else {
        return Ok(None);
    };
    let now = clock.now();
    let tile = tile(loaded, store, m, k, DateTime::<Utc>::UNIX_EPOCH).await?;
    let values = store
        .values(Some(slug.to_owned()), 200)
        .await?
        .into_iter()
        .map(|v| page::ValueRow {
            measured_at: v.measured_at,
            value: v.value,
            status: v.status,
            band: v.band,
            message: v.message,
            run_id: v.run_id,
        })
        .collect();
    Ok(Some(page::KriPage {
        generated_at: now,
        tile,
        values,
    }))
}
