//! What the pages show, read fresh from the store (and the scheduler, when one runs): the
//! dashboard of `GET /` and `kri report --html`, and one KRI's page.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kri_core::report::ValueRow;
use kri_core::store::{SeriesPoint, StoreError};
use kri_core::{Clock, Direction, Kri, RunContext, Store};
use kri_dashboard as page;

use kri_agent::scheduler::SlotView;
use kri_config::{Loaded, Module, Tenant};

/// Days of history on a tile's sparkline.
pub const SPARK_DAYS: i64 = 30;
/// Most points on a tile's sparkline, and on a KRI page's chart: a longer history is thinned
/// to these, keeping its highs, lows and band changes.
const SPARK_POINTS: u32 = 120;
const CHART_POINTS: u32 = 300;
/// Runs listed on the dashboard.
const RECENT_RUNS: u32 = 20;
/// Items listed per feed.
const FEED_ITEMS: usize = 10;

/// A stored time (RFC 3339) back to a time; `None` for text that is not one.
pub(super) fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc())
}

/// The tenant a page is about: the one asked for, else the first (the only one, mostly).
pub fn pick_tenant<'a>(loaded: &'a Loaded, name: Option<&str>) -> Result<&'a Tenant, String> {
    match name {
        Some(n) => loaded
            .tenants
            .iter()
            .find(|t| t.name == n)
            .ok_or_else(|| format!("There is no tenant `{n}` here. The overview at / lists the tenants.")),
        None => loaded
            .tenants
            .first()
            .ok_or_else(|| "No tenant is configured.".to_owned()),
    }
}

/// The name shown on a page: none for the single tenant of a config without tenants.
fn shown(loaded: &Loaded, tenant: &Tenant) -> Option<String> {
    loaded.multi_tenant.then(|| tenant.name.clone())
}

/// The store as one tenant's pages read it: that tenant's rows only, so each read is one
/// index range (the one tenant of a config without tenants is `default`, as its rows are).
fn of_tenant(tenant: &Tenant, store: &Store) -> Store {
    store.scoped(Some(&tenant.name))
}

/// The selected KRIs of a tenant's enabled connectors, in registry order.
pub fn selected(tenant: &Tenant) -> impl Iterator<Item = (&Module, &'static dyn Kri)> {
    tenant.modules.iter().filter(|m| m.connector.is_some()).flat_map(|m| {
        m.reg
            .kris
            .iter()
            .filter(|k| m.selected.contains(&k.slug()))
            .map(move |k| (m, *k))
    })
}

/// One KRI's tile: `latest` from the read model, `history` its chart.
fn tile(tenant: &Tenant, (m, k): (&Module, &dyn Kri), latest: Option<ValueRow>, history: &[SeriesPoint]) -> page::Tile {
    let t = tenant.thresholds_for(k);
    let practice = tenant.practice_for(k.slug());
    let standing = latest.as_ref().map(standing).unwrap_or_default();
    page::Tile {
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
        history: points(history),
        title: tenant.title_for(k),
        owner: practice.owner,
        action: practice.action,
        standing,
    }
}

/// Where a KRI stands, from its newest value as [`kri_agent::practice::Standing`] annotated it.
fn standing(v: &ValueRow) -> page::Standing {
    page::Standing {
        previous: v.previous_value,
        band_since: v.band_since.as_deref().and_then(parse_time),
        stale: v.stale,
        overdue: v.overdue,
        acknowledged: v.acknowledged.as_ref().map(|a| page::Acknowledgement {
            by: a.by.clone(),
            note: a.note.clone(),
            until: a.until.as_deref().and_then(parse_time),
        }),
    }
}

/// The newest value of each of the (scoped) store's KRIs, from the read model, with where it
/// stands (band since, stale, acknowledged, overdue) at `now`.
async fn newest_by_slug(
    store: &Store,
    tenant: &Tenant,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<std::collections::HashMap<String, ValueRow>, StoreError> {
    let rows = kri_agent::practice::newest(store, std::slice::from_ref(tenant), now).await?;
    Ok(rows.into_iter().map(|v| (v.slug.clone(), v)).collect())
}

fn points(rows: &[SeriesPoint]) -> Vec<page::Point> {
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
    tenant: &Tenant,
    store: &Store,
    clock: Arc<dyn Clock>,
    slots: Option<&[SlotView]>,
    actions: page::Actions,
) -> Result<page::Dashboard, StoreError> {
    let store = &of_tenant(tenant, store);
    let now = clock.now();
    let since = now - chrono::Duration::days(SPARK_DAYS);
    let mut latest = newest_by_slug(store, tenant, now).await?;
    let mut tiles = Vec::new();
    for (m, k) in selected(tenant) {
        let newest = latest.remove(k.slug());
        let history = store.series(k.slug(), since, SPARK_POINTS).await?;
        tiles.push(tile(tenant, (m, k), newest, &history));
    }
    let summary = store.run_summary().await?;
    let mut connectors = Vec::new();
    let mut feeds = Vec::new();
    for m in tenant.modules.iter().filter(|m| m.connector.is_some()) {
        let slot = slots.and_then(|s| s.iter().find(|s| s.module == m.reg.module && s.tenant == tenant.name));
        let last = summary
            .iter()
            .find(|s| s.module == m.reg.module && s.tenant == tenant.name)
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
            let ctx = RunContext::for_tenant(clock.clone(), store, &tenant.name, m.reg.module, false);
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
    // Sinks serve every tenant: shown on the page of a single-tenant install or of all tenants.
    let sinks = if shown(loaded, tenant).is_none() && !matches!(actions, page::Actions::Static) {
        kri_agent::sink_status(&loaded.sinks, store)
            .await?
            .into_iter()
            .map(|s| page::SinkRow {
                name: s.name,
                kind: s.kind.to_owned(),
                delivered: s.delivered,
                waiting: s.waiting,
                dead: s.dead,
                oldest_waiting: s.oldest_waiting,
                last_error: s.last_error,
            })
            .collect()
    } else {
        Vec::new()
    };
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
        tenant: shown(loaded, tenant),
        tiles,
        connectors,
        runs,
        feeds,
        sinks,
        actions,
    })
}

/// The executive report of `tenant` over `period` (its length and how it was asked).
pub async fn report(
    loaded: &Loaded,
    tenant: &Tenant,
    store: &Store,
    clock: &dyn Clock,
    (period, asked): (std::time::Duration, &str),
) -> Result<page::Report, StoreError> {
    let store = &of_tenant(tenant, store);
    let now = clock.now();
    let since = chrono::Duration::from_std(period)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(now);
    let mut latest = newest_by_slug(store, tenant, now).await?;
    let mut kris = Vec::new();
    for (m, k) in selected(tenant) {
        let newest = latest.remove(k.slug());
        let history = store.series(k.slug(), since, SPARK_POINTS).await?;
        let start = history
            .iter()
            .find(|p| p.value.is_some_and(f64::is_finite))
            .and_then(|p| Some((p.value?, p.band.clone())));
        kris.push(page::ReportKri {
            tile: tile(tenant, (m, k), newest, &history),
            start,
        });
    }
    Ok(page::Report {
        generated_at: now,
        period: asked.to_owned(),
        since,
        tenant: shown(loaded, tenant),
        kris,
    })
}

/// One KRI's page: all its stored history. `None`: not a selected KRI of an enabled connector.
pub async fn kri(
    loaded: &Loaded,
    tenant: &Tenant,
    store: &Store,
    clock: &dyn Clock,
    slug: &str,
    range: Option<&str>,
    actions: page::Actions,
) -> Result<Option<page::KriPage>, StoreError> {
    let Some((m, k)) = selected(tenant).find(|(_, k)| k.slug() == slug) else {
        return Ok(None);
    };
    let store = &of_tenant(tenant, store);
    let now = clock.now();
    // The chart spans what the store keeps ([store] keep_days) in at most CHART_POINTS: the
    // last SPARK_DAYS as measured, the days before from the daily rollups, so its cost does
    // not grow with the history kept.
    let kept = chrono::Duration::days(i64::from(loaded.keep_days));
    // `?range=`: one of the page's ranges, within what the store keeps; else all it keeps.
    let range = range.filter(|r| page::RANGES.contains(r));
    let span = range
        .and_then(|r| kri_core::config::parse_duration(if r == "1y" { "365d" } else { r }).ok())
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map_or(kept, |d| d.min(kept));
    let since = now - span;
    let raw_since = now - chrono::Duration::days(SPARK_DAYS);
    let newest = newest_by_slug(store, tenant, now).await?.remove(slug);
    let history = store.chart(slug, since, raw_since, CHART_POINTS).await?;
    let tile = tile(tenant, (m, k), newest, &history);
    let rows = store.values(Some(slug.to_owned()), 200).await?;
    let acks = store.ack_log(slug, 100).await?;
    let breaches = breaches(&rows, &acks);
    let values = rows
        .into_iter()
        .map(|v| page::ValueRow {
            measured_at: v.measured_at,
            value: v.value,
            status: v.status,
            band: v.band,
            message: v.message,
            run_id: v.run_id,
            change: v.change,
        })
        .collect();
    let practice = tenant.practice_for(slug);
    let points: Vec<kri_core::calibrate::Point> = tile
        .history
        .iter()
        .map(|p| kri_core::calibrate::Point {
            at: p.at,
            value: p.value,
        })
        .collect();
    let thresholds = tenant.thresholds_for(k);
    let perpetual = kri_core::calibrate::perpetual(&points, k.direction(), thresholds, now).and_then(|band| {
        let first = points.first()?.at;
        Some((band.as_str().to_owned(), (now - first).num_days()))
    });
    Ok(Some(page::KriPage {
        generated_at: now,
        tenant: shown(loaded, tenant),
        tile,
        values,
        how: k.how().to_owned(),
        appetite: practice.appetite,
        range: range.map(str::to_owned),
        breaches,
        perpetual,
        actions,
    }))
}

/// A KRI's stays in amber or red from its values (newest first), with the acknowledgement
/// given during each; newest first.
fn breaches(rows: &[ValueRow], acks: &[kri_core::store::Ack]) -> Vec<page::Breach> {
    let mut out: Vec<page::Breach> = Vec::new();
    let mut open: Option<page::Breach> = None;
    // Oldest first; a failed value (no band) neither starts nor ends a stay.
    for r in rows.iter().rev() {
        let Some(band) = r.band.as_deref() else { continue };
        let Some(at) = parse_time(&r.measured_at) else { continue };
        let breach = band == "amber" || band == "red";
        match open.take() {
            Some(b) if b.band == band => open = Some(b),
            Some(mut b) => {
                b.left = Some(at);
                out.push(b);
                open = breach.then(|| page::Breach {
                    band: band.to_owned(),
                    entered: at,
                    left: None,
                    acknowledged: None,
                });
            }
            None if breach => {
                open = Some(page::Breach {
                    band: band.to_owned(),
                    entered: at,
                    left: None,
                    acknowledged: None,
                });
            }
            None => {}
        }
    }
    out.extend(open);
    for b in &mut out {
        b.acknowledged = acks
            .iter()
            .filter(|a| a.band == b.band)
            .filter(|a| parse_time(&a.at).is_some_and(|at| at >= b.entered && b.left.is_none_or(|l| at < l)))
            .max_by(|x, y| x.at.cmp(&y.at))
            .map(|a| page::Acknowledgement {
                by: a.by.clone(),
                note: a.note.clone(),
                until: a.until.as_deref().and_then(parse_time),
            });
    }
    out.reverse();
    out
}

/// The all-tenants overview: each tenant's KRIs by band, its failed connectors and last run,
/// read from the read model in three queries whatever the number of tenants or runs.
pub async fn overview(
    loaded: &Loaded,
    store: &Store,
    clock: &dyn Clock,
    actions: page::Actions,
) -> Result<page::Overview, StoreError> {
    let latest = store.latest_bands().await?;
    let bands: HashMap<(&str, &str), Option<&str>> = latest
        .iter()
        .map(|v| ((v.tenant.as_str(), v.slug.as_str()), v.band.as_deref()))
        .collect();
    let summary = store.run_summary().await?;
    // The matrix's columns: every KRI some tenant selects, in registry order.
    let mut kris: Vec<(String, String)> = Vec::new();
    for t in &loaded.tenants {
        for (_, k) in selected(t) {
            if !kris.iter().any(|(s, _)| s == k.slug()) {
                kris.push((k.slug().to_owned(), k.title().to_owned()));
            }
        }
    }
    let mut by_tenant: HashMap<&str, Vec<&kri_core::store::ModuleRuns>> = HashMap::new();
    for s in &summary {
        by_tenant.entry(s.tenant.as_str()).or_default().push(s);
    }
    let tenants = loaded
        .tenants
        .iter()
        .map(|t| {
            let mut row = page::TenantBands {
                name: t.name.clone(),
                red: 0,
                amber: 0,
                green: 0,
                no_value: 0,
                failed_connectors: 0,
                last_run: None,
                cells: kris
                    .iter()
                    .map(|(slug, _)| {
                        selected(t)
                            .any(|(_, k)| k.slug() == slug)
                            .then(|| bands.get(&(t.name.as_str(), slug.as_str())).copied().flatten())
                            .flatten()
                            .map(str::to_owned)
                    })
                    .collect(),
            };
            for (_, k) in selected(t) {
                match bands.get(&(t.name.as_str(), k.slug())).copied().flatten() {
                    Some("red") => row.red += 1,
                    Some("amber") => row.amber += 1,
                    Some("green") => row.green += 1,
                    _ => row.no_value += 1,
                }
            }
            for s in by_tenant.get(t.name.as_str()).into_iter().flatten() {
                let Some(last) = &s.last else { continue };
                // A partial run lost some of its KRIs: as failed as a failed one for this count.
                if last.status == "failed" || last.status == "partial" {
                    row.failed_connectors += 1;
                }
                let at = parse_time(&last.finished_at);
                if at > row.last_run {
                    row.last_run = at;
                }
            }
            row
        })
        .collect();
    Ok(page::Overview {
        generated_at: clock.now(),
        tenants,
        actions,
        kris,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(hour: u32, band: Option<&str>) -> ValueRow {
        let at = format!("2026-11-23T{hour:02}:00:00Z");
        let mut v = blank();
        v.measured_at = at;
        v.band = band.map(str::to_owned);
        v
    }

    fn blank() -> ValueRow {
        ValueRow {
            tenant: "default".into(),
            slug: "pp_vap_count".into(),
            module: "tap".into(),
            connector: "proofpoint-tap".into(),
            run_id: "r".into(),
            measured_at: String::new(),
            value: Some(1.0),
            unit: "count".into(),
            status: "ok".into(),
            band: None,
            message: None,
            previous: None,
            delta: None,
            amber: None,
            red: None,
            title: String::new(),
            owner: None,
            previous_value: None,
            change: None,
            band_since: None,
            stale: false,
            acknowledged: None,
            overdue: false,
        }
    }

    #[test]
    fn breaches_are_stays_in_amber_or_red_newest_first_with_their_acknowledgement() {
        // Newest first, as the store lists them: green, red, a failed value, amber, amber, green.
        let rows = [
            row(5, Some("green")),
            row(4, Some("red")),
            row(3, None),
            row(2, Some("amber")),
            row(1, Some("amber")),
            row(0, Some("green")),
        ];
        let ack = kri_core::store::Ack {
            tenant: "default".into(),
            slug: "pp_vap_count".into(),
            band: "amber".into(),
            by: Some("Ana".into()),
            note: "seen".into(),
            at: "2026-11-23T01:30:00Z".into(),
            until: None,
            cleared_at: None,
        };
        let b = breaches(&rows, &[ack]);
        let got: Vec<(&str, String, Option<String>, bool)> = b
            .iter()
            .map(|b| {
                (
                    b.band.as_str(),
                    b.entered.to_rfc3339(),
                    b.left.map(|l| l.to_rfc3339()),
                    b.acknowledged.is_some(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "red",
                    "2026-11-23T04:00:00+00:00".into(),
                    Some("2026-11-23T05:00:00+00:00".into()),
                    false
                ),
                (
                    "amber",
                    "2026-11-23T01:00:00+00:00".into(),
                    Some("2026-11-23T04:00:00+00:00".into()),
                    true
                ),
            ]
        );
    }
}
