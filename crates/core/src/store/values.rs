//! KRI values read back: "now" from the read model ([`Store::latest_values`],
//! [`Store::last_good`]), a listing in pages of at most its limit with a cursor
//! ([`Store::values_page`]), and one KRI's history over a range, capped in points
//! ([`Store::series`]). Each reads an index range; none walks a KRI's whole history.

use std::fmt;

use chrono::{DateTime, Utc};

use super::sql::{Filter, Row, Val, vals};
use super::{Store, StoreError, StoreFailure, fmt_time};
use crate::report::ValueRow;

/// The columns [`value_row`] reads.
pub(super) const VALUE_COLUMNS: &str =
    "tenant, slug, connector, run_id, measured_at, value, unit, status, band, message, previous_value, id, amber, red";
/// [`VALUE_COLUMNS`] of `kri_values v` in a join.
pub(super) const V_COLUMNS: &str = "v.tenant, v.slug, v.connector, v.run_id, v.measured_at, v.value, v.unit, v.status, v.band, \
                         v.message, v.previous_value, v.id, v.amber, v.red";

/// Most values one page of [`Store::values_page`] holds.
pub const MAX_PAGE: u32 = 10_000;

/// Where the next page of a value listing starts: after the value measured at `at` with id
/// `id`. Shown to users as an opaque word (`1763870400.1234`), given back with `--cursor` or
/// `?cursor=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    at: i64,
    id: i64,
}

impl Cursor {
    /// Read a cursor that kri printed; anything else is refused with what to do.
    pub fn parse(text: &str) -> Result<Cursor, String> {
        let bad = || {
            format!(
                "cursor `{}` is not one kri gave: use the next_cursor of the page before, or leave it out for the newest values",
                text.chars().filter(char::is_ascii_graphic).take(40).collect::<String>()
            )
        };
        let (at, id) = text.trim().split_once('.').ok_or_else(bad)?;
        let at: i64 = at.parse().map_err(|_| bad())?;
        let id: i64 = id.parse().map_err(|_| bad())?;
        if id < 0 || DateTime::<Utc>::from_timestamp(at, 0).is_none() {
            return Err(bad());
        }
        Ok(Cursor { at, id })
    }

    fn after(row: &ValueRow, id: i64) -> Option<Cursor> {
        let at = DateTime::parse_from_rfc3339(&row.measured_at).ok()?.timestamp();
        Some(Cursor { at, id })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.at, self.id)
    }
}

/// The band of a KRI's newest value ([`Store::latest_bands`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestBand {
    pub tenant: String,
    pub slug: String,
    pub band: Option<String>,
}

/// Where one (tenant, KRI) stands ([`Store::kri_states`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KriState {
    pub tenant: String,
    pub slug: String,
    /// The newest value's time and status (`ok`, `failed`, `unlicensed`).
    pub newest_at: String,
    pub newest_status: String,
    /// The band of the newest good value, and when the KRI entered it.
    pub band: Option<String>,
    pub band_since: Option<String>,
}

/// What a value listing asks for.
#[derive(Debug, Clone, Default)]
pub struct ValuesQuery {
    /// One KRI, or all.
    pub slug: Option<String>,
    /// Only values measured at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Most values on the page (1 ..= [`MAX_PAGE`]).
    pub limit: u32,
    /// Continue after this (a page's `next_cursor`).
    pub cursor: Option<Cursor>,
}

/// One page of a value listing, newest first.
#[derive(Debug, Clone)]
pub struct ValuesPage {
    pub values: Vec<ValueRow>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

impl Store {
    /// The newest value of every (tenant, KRI), good or not (the overview's bands), from the
    /// read model.
    pub async fn latest_values(&self) -> Result<Vec<ValueRow>, StoreError> {
        self.latest("reading the newest values", "newest_id").await
    }

    /// The band of the newest value of every (tenant, KRI) (`None` when it failed), from the
    /// read model alone: the many-tenant overview counts them.
    pub async fn latest_bands(&self) -> Result<Vec<LatestBand>, StoreError> {
        let mut f = Filter::default();
        f.eq("tenant", self.tenant_filter());
        self.query_map(
            "reading the newest bands",
            &format!(
                "SELECT tenant, slug, newest_band FROM kri_latest{} ORDER BY tenant, slug",
                f.sql()
            ),
            f.params,
            |r| {
                Ok(LatestBand {
                    tenant: r.text(0)?,
                    slug: r.text(1)?,
                    band: r.opt_text(2)?,
                })
            },
        )
        .await
    }

    /// Where every (tenant, KRI) stands, from the read model: its newest value's time and
    /// status, its good band and since when.
    pub async fn kri_states(&self) -> Result<Vec<KriState>, StoreError> {
        let mut f = Filter::default();
        f.eq("tenant", self.tenant_filter());
        self.query_map(
            "reading where the KRIs stand",
            &format!(
                "SELECT tenant, slug, newest_at, newest_status, good_band, band_since FROM kri_latest{}
                 ORDER BY tenant, slug",
                f.sql()
            ),
            f.params,
            |r| {
                Ok(KriState {
                    tenant: r.text(0)?,
                    slug: r.text(1)?,
                    newest_at: r.text(2)?,
                    newest_status: r.text(3)?,
                    band: r.opt_text(4)?,
                    band_since: r.opt_text(5)?,
                })
            },
        )
        .await
    }

    /// The newest good value of every (tenant, KRI) (`/metrics`' `kri_value`), from the read model.
    pub async fn latest_good_values(&self) -> Result<Vec<ValueRow>, StoreError> {
        self.latest("reading the last good values", "good_id").await
    }

    async fn latest(&self, action: &'static str, which: &'static str) -> Result<Vec<ValueRow>, StoreError> {
        let mut f = Filter::default();
        f.eq("l.tenant", self.tenant_filter());
        self.query_map(
            action,
            &format!(
                "SELECT {V_COLUMNS} FROM kri_latest l JOIN kri_values v ON v.id = l.{which}{}
                 ORDER BY l.tenant, l.slug",
                f.sql()
            ),
            f.params,
            value_row,
        )
        .await
    }

    /// The newest value that is not a failure (the "last good value"): the tenant's, for a
    /// scoped handle; the newest of any tenant's otherwise.
    pub async fn last_good(&self, slug: &str) -> Result<Option<ValueRow>, StoreError> {
        let mut f = Filter::default();
        f.eq("l.slug", Some(slug)).eq("l.tenant", self.tenant_filter());
        self.query_opt(
            "reading the last good value",
            &format!(
                "SELECT {V_COLUMNS} FROM kri_latest l JOIN kri_values v ON v.id = l.good_id{}
                 ORDER BY v.measured_at DESC, v.id DESC LIMIT 1",
                f.sql()
            ),
            f.params,
            value_row,
        )
        .await
    }

    /// Stored values, newest first, for one slug or all (the first `limit`).
    pub async fn values(&self, slug: Option<String>, limit: u32) -> Result<Vec<ValueRow>, StoreError> {
        self.values_since(slug, None, limit).await
    }

    /// Stored values measured at or after `since` (all when `None`), newest first, at most
    /// `limit`, each with the KRI's previous value (the newest older value of the same tenant's
    /// KRI that has one) and the change from it.
    pub async fn values_since(
        &self,
        slug: Option<String>,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<ValueRow>, StoreError> {
        let q = ValuesQuery {
            slug,
            since,
            limit,
            cursor: None,
        };
        Ok(self.values_page(&q).await?.values)
    }

    /// One page of stored values, newest first: at most `limit` (capped at [`MAX_PAGE`]) read
    /// by one index range, and where the next page starts.
    pub async fn values_page(&self, q: &ValuesQuery) -> Result<ValuesPage, StoreError> {
        let limit = q.limit.clamp(1, MAX_PAGE);
        let (sql, params) = self.values_query(q, limit + 1);
        let mut rows = self
            .query_map("reading values", &sql, params, |r| Ok((value_row(r)?, r.int(11)?)))
            .await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().and_then(|(row, id)| Cursor::after(row, *id))
        } else {
            None
        };
        Ok(ValuesPage {
            values: rows.into_iter().map(|(row, _)| row).collect(),
            next_cursor,
        })
    }

    pub(crate) fn values_query(&self, q: &ValuesQuery, limit: u32) -> (String, Vec<Val>) {
        let mut f = Filter::default();
        f.eq("tenant", self.tenant_filter()).eq("slug", q.slug.clone());
        if let Some(since) = q.since {
            f.and("measured_at >= {}", vals![fmt_time(&since)]);
        }
        if let Some(c) = q.cursor {
            let at = DateTime::<Utc>::from_timestamp(c.at, 0).map(|t| fmt_time(&t));
            // `measured_at <= at` bounds the index range; the rest skips what was shown.
            f.and(
                "measured_at <= {} AND (measured_at < {} OR id < {})",
                vals![at.clone(), at, c.id],
            );
        }
        let where_ = f.sql();
        let limit = f.param(limit);
        (
            format!("SELECT {VALUE_COLUMNS} FROM kri_values{where_} ORDER BY measured_at DESC, id DESC LIMIT {limit}"),
            f.params,
        )
    }

    /// The values of `slug` measured at or after `since`, oldest first: every one when they
    /// are at most `max_points`, else at most `max_points` of them that keep the shape (each
    /// stretch's lowest and highest value and its changes of band, see [`downsample`]). The handle's tenant's
    /// (scope it: an unscoped handle reads every tenant's).
    pub async fn series(
        &self,
        slug: &str,
        since: DateTime<Utc>,
        max_points: u32,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        Ok(downsample(self.measured(slug, since).await?, max_points as usize))
    }

    /// Every value of `slug` from `since` on, oldest first, as a chart draws it: the cost of a
    /// longer range is a few bytes a point.
    async fn measured(&self, slug: &str, since: DateTime<Utc>) -> Result<Vec<SeriesPoint>, StoreError> {
        let (sql, params) = self.series_query(slug, since);
        self.query_map("reading a KRI's history", &sql, params, |r| {
            Ok(SeriesPoint {
                measured_at: r.text(0)?,
                value: r.opt_real(1)?,
                band: r.opt_text(2)?,
            })
        })
        .await
    }

    /// A chart of `slug` from `since` on in at most `max_points`, its cost bounded whatever the
    /// range: the days before `raw_since` from the daily rollups (each day's lowest and highest
    /// value, at the times they were measured, and the day's last band), the rest as measured;
    /// then thinned like [`Store::series`]. The handle's tenant's (scope it).
    pub async fn chart(
        &self,
        slug: &str,
        since: DateTime<Utc>,
        raw_since: DateTime<Utc>,
        max_points: u32,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        let split_day = fmt_time(&raw_since.max(since))[..10].to_owned();
        let (sql, params) = self.daily_query(slug, &fmt_time(&since)[..10], &split_day);
        let days = self
            .query_map("reading a KRI's daily history", &sql, params, |r| {
                let band = r.opt_text(4)?;
                let low = (r.text(0)?, r.opt_real(1)?);
                let high = (r.text(2)?, r.opt_real(3)?);
                let mut points = vec![low];
                if high.0 != points[0].0 {
                    points.push(high);
                }
                points.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(points
                    .into_iter()
                    .map(|(measured_at, value)| SeriesPoint {
                        measured_at,
                        value,
                        band: band.clone(),
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        let raw_from = DateTime::parse_from_rfc3339(&format!("{split_day}T00:00:00Z"))
            .map(|t| t.to_utc())
            .unwrap_or(raw_since)
            .max(since);
        let mut points: Vec<SeriesPoint> = days.into_iter().flatten().collect();
        points.extend(self.measured(slug, raw_from).await?);
        Ok(downsample(points, max_points as usize))
    }

    pub(crate) fn daily_query(&self, slug: &str, from_day: &str, to_day: &str) -> (String, Vec<Val>) {
        let mut f = Filter::default();
        f.eq("tenant", self.tenant_filter())
            .eq("slug", Some(slug))
            .and("day >= {} AND day < {}", vals![from_day, to_day]);
        (
            format!(
                "SELECT low_at, low, high_at, high, band FROM kri_daily{} ORDER BY day",
                f.sql()
            ),
            f.params,
        )
    }

    pub(crate) fn series_query(&self, slug: &str, since: DateTime<Utc>) -> (String, Vec<Val>) {
        let mut f = Filter::default();
        f.eq("tenant", self.tenant_filter())
            .eq("slug", Some(slug))
            .and("measured_at >= {}", vals![fmt_time(&since)]);
        (
            format!(
                "SELECT measured_at, value, band FROM kri_values{} ORDER BY measured_at, id",
                f.sql()
            ),
            f.params,
        )
    }
}

/// One point of a KRI's chart ([`Store::series`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoint {
    /// RFC 3339, as stored.
    pub measured_at: String,
    /// `None` for a failed measurement.
    pub value: Option<f64>,
    pub band: Option<String>,
}

/// At most `max` of `rows` (oldest first) that keep the shape of the line: the first and the
/// last, and in each of `(max − 2) / 4` equal stretches its lowest and highest value and its
/// first and last change of band. Fewer rows than `max` are kept as they are.
pub fn downsample(rows: Vec<SeriesPoint>, max: usize) -> Vec<SeriesPoint> {
    let n = rows.len();
    let max = max.max(2);
    if n <= max {
        return rows;
    }
    if max < 6 {
        // Too few for a stretch's four: evenly spaced, the ends included.
        let keep: Vec<usize> = (0..max).map(|i| i * (n - 1) / (max - 1)).collect();
        return rows
            .into_iter()
            .enumerate()
            .filter_map(|(i, row)| keep.contains(&i).then_some(row))
            .collect();
    }
    let buckets = (max.saturating_sub(2) / 4).max(1);
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[n - 1] = true;
    for b in 0..buckets {
        let (start, end) = (b * n / buckets, ((b + 1) * n / buckets).min(n));
        let mut low: Option<(usize, f64)> = None;
        let mut high: Option<(usize, f64)> = None;
        let (mut first_change, mut last_change) = (None, None);
        for (i, row) in rows.iter().enumerate().take(end).skip(start) {
            if let Some(v) = row.value.filter(|v| v.is_finite()) {
                if low.is_none_or(|(_, l)| v < l) {
                    low = Some((i, v));
                }
                if high.is_none_or(|(_, h)| v > h) {
                    high = Some((i, v));
                }
            }
            if i > 0 && row.band.is_some() && row.band != rows[i - 1].band {
                first_change = first_change.or(Some(i));
                last_change = Some(i);
            }
        }
        for i in [low.map(|l| l.0), high.map(|h| h.0), first_change, last_change]
            .into_iter()
            .flatten()
        {
            keep[i] = true;
        }
    }
    rows.into_iter()
        .zip(keep)
        .filter_map(|(row, k)| k.then_some(row))
        .collect()
}

pub(super) fn value_row(r: &Row) -> Result<ValueRow, StoreFailure> {
    let slug = r.text(1)?;
    let value = r.opt_real(5)?;
    let previous = r.opt_real(10)?;
    let title = crate::registry::find_kri(&slug).map_or_else(|| slug.clone(), |(_, k)| k.title().to_owned());
    Ok(ValueRow {
        tenant: r.text(0)?,
        module: crate::registry::find_kri(&slug)
            .map(|(reg, _)| reg.module.to_owned())
            .unwrap_or_default(),
        slug,
        connector: r.text(2)?,
        run_id: r.text(3)?,
        measured_at: r.text(4)?,
        value,
        unit: r.text(6)?,
        status: r.text(7)?,
        band: r.opt_text(8)?,
        message: r.opt_text(9)?,
        previous,
        delta: value.zip(previous).map(|(v, p)| v - p),
        amber: r.opt_real(12)?,
        red: r.opt_real(13)?,
        title,
        owner: None,
        previous_value: previous,
        change: value.zip(previous).map(|(v, p)| v - p),
        band_since: None,
        stale: false,
        acknowledged: None,
        overdue: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Point `i`: measured `i` hours after a start, so its time says which it is.
    fn row(i: usize, value: f64, band: &str) -> SeriesPoint {
        SeriesPoint {
            measured_at: format!("{i:05}"),
            value: Some(value),
            band: Some(band.into()),
        }
    }

    fn ids(points: &[SeriesPoint]) -> Vec<usize> {
        points.iter().map(|p| p.measured_at.parse().unwrap()).collect()
    }

    #[test]
    fn a_long_series_keeps_its_extremes_and_band_changes_within_the_cap() {
        // A year of hourly values: a slow wave, one spike, one dip, one short red spell.
        let rows: Vec<SeriesPoint> = (0..8760)
            .map(|i| {
                let v = match i {
                    1234 => 500.0,
                    7000 => -40.0,
                    _ => 10.0 + ((i as f64) / 300.0).sin() * 5.0,
                };
                let band = if (4000..4003).contains(&i) { "red" } else { "green" };
                row(i, v, band)
            })
            .collect();
        let kept = downsample(rows, 300);
        assert!(kept.len() <= 300, "{} points", kept.len());
        assert!(kept.len() > 100, "{} points", kept.len());
        let order = ids(&kept);
        for must in [0, 8759, 1234, 7000, 4000, 4003] {
            assert!(order.contains(&must), "{must} kept");
        }
        assert!(order.windows(2).all(|w| w[0] < w[1]), "oldest first, no repeats");
    }

    #[test]
    fn a_short_series_is_kept_whole() {
        let rows: Vec<SeriesPoint> = (0..50).map(|i| row(i, i as f64, "green")).collect();
        assert_eq!(downsample(rows, 300).len(), 50);
        assert!(downsample(Vec::new(), 300).is_empty());
        let five: Vec<SeriesPoint> = (0..5).map(|i| row(i, 1.0, "green")).collect();
        assert_eq!(
            ids(&downsample(five.clone(), 0)),
            [0, 4],
            "first and last, whatever the cap"
        );
        assert_eq!(ids(&downsample(five, 3)), [0, 2, 4], "a small cap: evenly spaced");
    }

    #[test]
    fn a_cursor_reads_back_what_it_printed_and_refuses_the_rest() {
        let c = Cursor::parse("1763870400.42").unwrap();
        assert_eq!(c.to_string(), "1763870400.42");
        for bad in [
            "",
            "abc",
            "1.x",
            "1763870400",
            "99999999999999999.1",
            "1.-3",
            "1\x1b[2J.1",
        ] {
            let e = Cursor::parse(bad).unwrap_err();
            assert!(e.contains("is not one kri gave") && !e.contains('\x1b'), "{bad}: {e}");
        }
    }
}
