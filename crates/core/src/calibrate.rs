//! Thresholds from history (`kri calibrate`): where a KRI's stored values put amber and red,
//! direction-aware, with the days the same history would have spent in each band under the
//! current and the suggested thresholds; and whether a KRI has sat in one band so long that its
//! thresholds may not discriminate (`perpetual`).
//!
//! Suggestions use the nearest-rank percentile: amber at the 75th and red at the 95th when
//! higher is worse, the 25th and 5th when lower is worse.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::kri::{Band, Direction, Thresholds};

/// Fewer values than this suggest nothing: a percentile of a handful is noise.
pub const MIN_VALUES: usize = 14;

/// A KRI in one band for at least this many days (and the whole period) is `perpetual`.
pub const PERPETUAL_DAYS: i64 = 30;

/// One measured value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// Days spent in each band.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BandDays {
    pub green: f64,
    pub amber: f64,
    pub red: f64,
}

/// `days_in_band`: under the current thresholds, and under the suggested ones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DaysInBand {
    pub current: BandDays,
    pub suggested: Option<BandDays>,
}

/// What the history says about one KRI's thresholds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// How many values it used.
    pub values: usize,
    pub current: Thresholds,
    /// `None` when there is too little history (see `why_not`).
    pub suggested: Option<Thresholds>,
    /// Why nothing is suggested.
    pub why_not: Option<String>,
    pub days_in_band: DaysInBand,
    /// The band the KRI never left over a period of at least [`PERPETUAL_DAYS`].
    pub perpetual: Option<Band>,
}

/// The good values of a stored series (oldest first): a failed measurement has no value, an
/// unlicensed one no band; neither says anything about the thresholds.
pub fn good_points(series: &[crate::store::SeriesPoint]) -> Vec<Point> {
    series
        .iter()
        .filter(|p| p.band.is_some())
        .filter_map(|p| {
            let at = DateTime::parse_from_rfc3339(&p.measured_at).ok()?.to_utc();
            Some(Point {
                at,
                value: p.value.filter(|v| v.is_finite())?,
            })
        })
        .collect()
}

/// The nearest-rank `p`th percentile (0 < p ≤ 100) of ascending `sorted` (not empty): the
/// value at rank ⌈p/100 × n⌉.
pub fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// The thresholds `values` suggest for `direction` (at least one value).
pub fn suggest(values: &[f64], direction: Direction) -> Thresholds {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    match direction {
        Direction::HigherIsWorse => Thresholds {
            amber: nearest_rank(&sorted, 75.0),
            red: nearest_rank(&sorted, 95.0),
        },
        Direction::LowerIsWorse => Thresholds {
            amber: nearest_rank(&sorted, 25.0),
            red: nearest_rank(&sorted, 5.0),
        },
    }
}

/// Days each band held under `t`: each value holds until the next one (the last until `now`).
pub fn days_in_band(points: &[Point], direction: Direction, t: Thresholds, now: DateTime<Utc>) -> BandDays {
    let mut seconds = [0i64; 3];
    for (i, p) in points.iter().enumerate() {
        let until = points.get(i + 1).map_or(now, |next| next.at).min(now);
        let held = (until - p.at).num_seconds().max(0);
        let slot = match Band::of(p.value, direction, t) {
            Band::Green => 0,
            Band::Amber => 1,
            Band::Red => 2,
        };
        seconds[slot] += held;
    }
    let days = |s: i64| (s as f64 / 86_400.0 * 10.0).round() / 10.0;
    BandDays {
        green: days(seconds[0]),
        amber: days(seconds[1]),
        red: days(seconds[2]),
    }
}

/// The band every value of a history at least [`PERPETUAL_DAYS`] long sat in, if one did.
pub fn perpetual(points: &[Point], direction: Direction, t: Thresholds, now: DateTime<Utc>) -> Option<Band> {
    let first = points.first()?;
    if now - first.at < chrono::Duration::days(PERPETUAL_DAYS) {
        return None;
    }
    let band = Band::of(first.value, direction, t);
    points
        .iter()
        .all(|p| Band::of(p.value, direction, t) == band)
        .then_some(band)
}

/// Calibrate from `points` (oldest first, good values only) against the `current` thresholds.
pub fn calibrate(points: &[Point], direction: Direction, current: Thresholds, now: DateTime<Utc>) -> Calibration {
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    let (suggested, why_not) = if values.len() < MIN_VALUES {
        (
            None,
            Some(format!(
                "{} values in the period; at least {MIN_VALUES} are needed: run longer or widen --since",
                values.len()
            )),
        )
    } else {
        (Some(suggest(&values, direction)), None)
    };
    Calibration {
        values: values.len(),
        current,
        suggested,
        why_not,
        days_in_band: DaysInBand {
            current: days_in_band(points, direction, current, now),
            suggested: suggested.map(|s| days_in_band(points, direction, s, now)),
        },
        perpetual: perpetual(points, direction, current, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-09-01T00:00:00Z").unwrap().to_utc() + chrono::Duration::hours(hours)
    }

    /// Twenty daily values 1..=20, in a shuffled order.
    fn twenty() -> Vec<Point> {
        let order = [7, 3, 19, 1, 12, 20, 5, 9, 14, 2, 18, 6, 11, 16, 4, 8, 15, 10, 17, 13];
        order
            .iter()
            .enumerate()
            .map(|(i, v)| Point {
                at: at(24 * i as i64),
                value: f64::from(*v),
            })
            .collect()
    }

    #[test]
    fn nearest_rank_by_hand() {
        // n = 20: P75 is rank 15, P95 rank 19, P25 rank 5, P5 rank 1.
        let sorted: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(nearest_rank(&sorted, 75.0), 15.0);
        assert_eq!(nearest_rank(&sorted, 95.0), 19.0);
        assert_eq!(nearest_rank(&sorted, 25.0), 5.0);
        assert_eq!(nearest_rank(&sorted, 5.0), 1.0);
        // n = 14: P75 is rank ⌈10.5⌉ = 11, P95 rank ⌈13.3⌉ = 14, P25 rank ⌈3.5⌉ = 4, P5 rank 1.
        let sorted: Vec<f64> = (1..=14).map(|v| f64::from(v * 10)).collect();
        assert_eq!(
            (
                nearest_rank(&sorted, 75.0),
                nearest_rank(&sorted, 95.0),
                nearest_rank(&sorted, 25.0),
                nearest_rank(&sorted, 5.0)
            ),
            (110.0, 140.0, 40.0, 10.0)
        );
    }

    #[test]
    fn suggestions_follow_the_direction() {
        let values: Vec<f64> = twenty().iter().map(|p| p.value).collect();
        assert_eq!(
            suggest(&values, Direction::HigherIsWorse),
            Thresholds { amber: 15.0, red: 19.0 }
        );
        assert_eq!(
            suggest(&values, Direction::LowerIsWorse),
            Thresholds { amber: 5.0, red: 1.0 }
        );
    }

    #[test]
    fn days_in_band_by_hand_in_both_directions() {
        let points = twenty();
        // Each value holds a day; the last until "now", a day after it.
        let now = at(24 * 20);
        let current = Thresholds { amber: 10.0, red: 25.0 };
        // Higher is worse, amber 10, red 25: 1..=9 green (9 days), 10..=20 amber (11 days).
        assert_eq!(
            days_in_band(&points, Direction::HigherIsWorse, current, now),
            BandDays {
                green: 9.0,
                amber: 11.0,
                red: 0.0
            }
        );
        // Suggested 15 / 19: 1..=14 green, 15..=18 amber, 19 and 20 red.
        let c = calibrate(&points, Direction::HigherIsWorse, current, now);
        assert_eq!(c.suggested, Some(Thresholds { amber: 15.0, red: 19.0 }));
        assert_eq!(
            c.days_in_band.suggested,
            Some(BandDays {
                green: 14.0,
                amber: 4.0,
                red: 2.0
            })
        );
        // Lower is worse, amber 5, red 1: 1 red, 2..=5 amber, 6..=20 green.
        let low = Thresholds { amber: 5.0, red: 1.0 };
        assert_eq!(
            days_in_band(&points, Direction::LowerIsWorse, low, now),
            BandDays {
                green: 15.0,
                amber: 4.0,
                red: 1.0
            }
        );
        // Half-days round to one decimal; a value measured after "now" holds for nothing.
        let two = [
            Point { at: at(0), value: 1.0 },
            Point {
                at: at(12),
                value: 30.0,
            },
        ];
        assert_eq!(
            days_in_band(&two, Direction::HigherIsWorse, current, at(18)),
            BandDays {
                green: 0.5,
                amber: 0.0,
                red: 0.3
            }
        );
    }

    #[test]
    fn too_few_values_suggest_nothing_and_say_why() {
        let points: Vec<Point> = twenty().into_iter().take(13).collect();
        let c = calibrate(
            &points,
            Direction::HigherIsWorse,
            Thresholds { amber: 10.0, red: 25.0 },
            at(24 * 13),
        );
        assert_eq!((c.values, c.suggested), (13, None));
        assert!(c.why_not.as_deref().unwrap().contains("at least 14"), "{c:?}");
        assert_eq!(c.days_in_band.suggested, None);
    }

    #[test]
    fn one_band_for_thirty_days_or_more_is_perpetual() {
        let t = Thresholds { amber: 10.0, red: 25.0 };
        let flat: Vec<Point> = (0..31)
            .map(|d| Point {
                at: at(24 * d),
                value: 3.0,
            })
            .collect();
        assert_eq!(
            perpetual(&flat, Direction::HigherIsWorse, t, at(24 * 31)),
            Some(Band::Green)
        );
        // Too short a history says nothing yet.
        assert_eq!(perpetual(&flat[..10], Direction::HigherIsWorse, t, at(24 * 10)), None);
        // One amber day breaks it.
        let mut moved = flat.clone();
        moved[15].value = 12.0;
        assert_eq!(perpetual(&moved, Direction::HigherIsWorse, t, at(24 * 31)), None);
        // Lower is worse: always under red is perpetually red.
        let low = Thresholds { amber: 50.0, red: 20.0 };
        assert_eq!(
            perpetual(&flat, Direction::LowerIsWorse, low, at(24 * 31)),
            Some(Band::Red)
        );
    }
}
