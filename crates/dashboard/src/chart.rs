//! Inline SVG charts: the tile sparkline and the larger chart of a KRI's page.
//!
//! Both draw the values over time with the amber and red thresholds as dashed horizontal lines;
//! the y-range always includes both thresholds. Both say in words what they show (`aria-label`
//! and `<title>`). Nothing here divides by zero or panics: empty, single, equal, huge and
//! non-finite values all give a drawable chart.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use crate::format::{day, num, with_unit};
use crate::{Point, Tile};

/// Draw circles for every point only up to this many (a year of hourly values would be heavy).
const MAX_DOTS: usize = 500;

/// The values to draw: finite ones only, in the given order.
fn finite(history: &[Point]) -> Vec<Point> {
    history.iter().filter(|p| p.value.is_finite()).copied().collect()
}

/// The y-range: covers the values and the thresholds, never empty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Range {
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}

impl Range {
    pub(crate) fn new(values: impl IntoIterator<Item = f64>) -> Range {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.into_iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if lo > hi {
            return Range { lo: 0.0, hi: 1.0 }; // nothing finite at all
        }
        // Halves: the difference of two halves never overflows, even for ±f64::MAX.
        if hi * 0.5 - lo * 0.5 <= 0.0 {
            let pad = (lo.abs() * 0.1).max(1.0);
            lo = (lo - pad).max(-f64::MAX);
            hi = (hi + pad).min(f64::MAX);
        }
        Range { lo, hi }
    }

    /// Where `v` sits: 0 at `lo`, 1 at `hi`, clamped, never NaN.
    pub(crate) fn frac(&self, v: f64) -> f64 {
        let t = (v * 0.5 - self.lo * 0.5) / (self.hi * 0.5 - self.lo * 0.5);
        if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.5 }
    }
}

/// The x-range: first to last time; a single instant sits in the middle.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    t0: DateTime<Utc>,
    t1: DateTime<Utc>,
}

impl Span {
    pub(crate) fn new(points: &[Point]) -> Option<Span> {
        let t0 = points.iter().map(|p| p.at).min()?;
        let t1 = points.iter().map(|p| p.at).max()?;
        Some(Span { t0, t1 })
    }

    fn millis(&self) -> i64 {
        (self.t1 - self.t0).num_milliseconds()
    }

    pub(crate) fn frac(&self, at: DateTime<Utc>) -> f64 {
        let total = self.millis();
        if total <= 0 {
            return 0.5;
        }
        let t = (at - self.t0).num_milliseconds() as f64 / total as f64;
        if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.5 }
    }
}

/// The plot area inside the viewBox, in SVG units.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Frame {
    fn x(&self, f: f64) -> f64 {
        self.left + f * (self.right - self.left)
    }
    fn y(&self, f: f64) -> f64 {
        self.bottom - f * (self.bottom - self.top)
    }
}

/// One SVG coordinate.
fn c(v: f64) -> String {
    format!("{v:.1}")
}

/// The thresholds to draw: (name, value), finite ones only.
fn thresholds(tile: &Tile) -> Vec<(&'static str, f64)> {
    [("amber", tile.amber), ("red", tile.red)]
        .into_iter()
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// Points as screen coordinates.
fn coords(points: &[Point], range: Range, span: Option<Span>, frame: &Frame) -> Vec<(f64, f64)> {
    points
        .iter()
        .map(|p| {
            let fx = span.map_or(0.5, |s| s.frac(p.at));
            (frame.x(fx), frame.y(range.frac(p.value)))
        })
        .collect()
}

fn polyline_points(xy: &[(f64, f64)]) -> String {
    xy.iter()
        .map(|&(x, y)| format!("{},{}", c(x), c(y)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// In words what a chart shows, e.g. "pp_vap_count over the last 30 days: 12 values from 3 to 14,
/// latest 14; amber at 10, red at 25 (higher is worse)".
pub(crate) fn describe(tile: &Tile, period: &str, points: &[Point]) -> String {
    let u = tile.unit.as_str();
    let mut s = format!("{} {period}: ", tile.slug);
    match points {
        [] => s.push_str("no values"),
        [p] => s.push_str(&format!("1 value, {}", with_unit(p.value, u))),
        [.., last] => {
            let values = points.iter().map(|p| p.value);
            let lo = values.clone().fold(f64::INFINITY, f64::min);
            let hi = values.fold(f64::NEG_INFINITY, f64::max);
            s.push_str(&format!(
                "{} values from {} to {}, latest {}",
                points.len(),
                with_unit(lo, u),
                with_unit(hi, u),
                with_unit(last.value, u)
            ));
        }
    }
    let th: Vec<String> = thresholds(tile)
        .iter()
        .map(|(name, v)| format!("{name} at {}", with_unit(*v, u)))
        .collect();
    if !th.is_empty() {
        s.push_str("; ");
        s.push_str(&th.join(", "));
        s.push_str(if tile.higher_is_worse {
            " (higher is worse)"
        } else {
            " (lower is worse)"
        });
    }
    s
}

/// How long a history covers, for the big chart's words: "over 45 days", "over 1 day", "history".
fn period(span: Option<Span>) -> String {
    match span.map(|s| s.millis()) {
        Some(ms) if ms > 0 => {
            let days = (ms + 86_399_999) / 86_400_000;
            if days == 1 {
                "over 1 day".to_owned()
            } else {
                format!("over {days} days")
            }
        }
        _ => "history".to_owned(),
    }
}

/// The tile's small chart of its history (the last 30 days) with the threshold lines.
pub(crate) fn sparkline(tile: &Tile) -> Markup {
    sparkline_over(tile, "over the last 30 days")
}

/// [`sparkline`] of a history covering `period` (its words: "over the period").
pub(crate) fn sparkline_over(tile: &Tile, period: &str) -> Markup {
    let points = finite(&tile.history);
    let label = describe(tile, period, &points);
    let th = thresholds(tile);
    let range = Range::new(points.iter().map(|p| p.value).chain(th.iter().map(|t| t.1)));
    let frame = Frame {
        left: 4.0,
        right: 236.0,
        top: 6.0,
        bottom: 58.0,
    };
    let xy = coords(&points, range, Span::new(&points), &frame);
    html! {
        svg.spark viewBox="0 0 240 64" role="img" aria-label=(label) {
            title { (label) }
            @for (name, v) in &th {
                @let y = c(frame.y(range.frac(*v)));
                line class={ "th th-" (name) } x1=(c(frame.left)) x2=(c(frame.right)) y1=(y) y2=(y) stroke-dasharray="5 3" {}
            }
            @if xy.len() > 1 {
                polyline.series points=(polyline_points(&xy)) {}
            }
            @if let Some(&(x, y)) = xy.last() {
                circle.dot cx=(c(x)) cy=(c(y)) r="3" {}
            }
            @if xy.is_empty() {
                text.lbl x="120" y="36" text-anchor="middle" { "no values yet" }
            }
        }
    }
}

/// The KRI page's chart of its whole history: thresholds labelled "amber 10" / "red 25", first
/// and last date, lowest and highest value of the axis, every point as a small circle.
pub(crate) fn chart(tile: &Tile) -> Markup {
    let points = finite(&tile.history);
    let span = Span::new(&points);
    let label = describe(tile, &period(span), &points);
    let th = thresholds(tile);
    let range = Range::new(points.iter().map(|p| p.value).chain(th.iter().map(|t| t.1)));
    let frame = Frame {
        left: 64.0,
        right: 632.0,
        top: 16.0,
        bottom: 200.0,
    };
    let xy = coords(&points, range, span, &frame);
    // Threshold labels: keep two close lines' labels from overlapping.
    let mut labels: Vec<(&str, f64, f64)> = th
        .iter()
        .map(|&(name, v)| (name, v, frame.y(range.frac(v)) + 4.0))
        .collect();
    if let [a, b] = labels.as_mut_slice() {
        let gap = (a.2 - b.2).abs();
        if gap < 14.0 {
            let push = (14.0 - gap) / 2.0;
            let (upper, lower) = if a.2 <= b.2 { (a, b) } else { (b, a) };
            upper.2 -= push;
            lower.2 += push;
        }
    }
    let zones = zones(tile, range, &frame);
    let changes = band_changes(tile, &points);
    html! {
        svg.chart viewBox="0 0 720 240" role="img" aria-label=(label) {
            title { (label) }
            @for (name, y0, y1) in &zones {
                rect class={ "zone zone-" (name) } x=(c(frame.left)) width=(c(frame.right - frame.left))
                    y=(c(y0.min(*y1))) height=(c((y1 - y0).abs())) {}
            }
            line.axis x1=(c(frame.left)) x2=(c(frame.left)) y1=(c(frame.top)) y2=(c(frame.bottom)) {}
            line.axis x1=(c(frame.left)) x2=(c(frame.right)) y1=(c(frame.bottom)) y2=(c(frame.bottom)) {}
            text.lbl x="58" y=(c(frame.top + 4.0)) text-anchor="end" { (num(range.hi)) }
            text.lbl x="58" y=(c(frame.bottom)) text-anchor="end" { (num(range.lo)) }
            @for (name, v) in &th {
                @let y = c(frame.y(range.frac(*v)));
                line class={ "th th-" (name) } x1=(c(frame.left)) x2=(c(frame.right)) y1=(y) y2=(y) stroke-dasharray="6 4" {}
            }
            @for (name, v, y) in &labels {
                text class={ "lbl lbl-" (name) } x=(c(frame.right + 6.0)) y=(c(*y)) { (name) " " (num(*v)) }
            }
            @if xy.len() > 1 {
                polyline.series points=(polyline_points(&xy)) {}
            }
            @if xy.len() <= MAX_DOTS {
                @for &(x, y) in &xy {
                    circle.dot cx=(c(x)) cy=(c(y)) r="3" {}
                }
            }
            @for (at, from, to) in &changes {
                @let x = c(frame.x(span.map_or(0.5, |s| s.frac(*at))));
                line class={ "change-mark to-" (to) } x1=(x) x2=(x) y1=(c(frame.top)) y2=(c(frame.bottom)) {
                    title { (from) " → " (to) " on " (day(*at)) }
                }
            }
            @match span {
                Some(s) if s.millis() > 0 => {
                    @for (i, t) in ticks(s).iter().enumerate() {
                        @let x = frame.x(s.frac(*t));
                        line.tick x1=(c(x)) x2=(c(x)) y1=(c(frame.bottom)) y2=(c(frame.bottom + 5.0)) {}
                        text.lbl x=(c(x)) y="222"
                            text-anchor=(match i { 0 => "start", TICKS => "end", _ => "middle" }) {
                            (tick_label(*t, s))
                        }
                    }
                }
                Some(s) => {
                    text.lbl x=(c((frame.left + frame.right) / 2.0)) y="222" text-anchor="middle" { (day(s.t0)) }
                }
                None => {
                    text.lbl x=(c((frame.left + frame.right) / 2.0)) y="112" text-anchor="middle" { "no values yet" }
                }
            }
        }
    }
}

/// Date labels on the time axis: this many intervals (TICKS + 1 labels).
const TICKS: usize = 4;

/// Evenly spaced times from the first to the last.
fn ticks(s: Span) -> Vec<DateTime<Utc>> {
    let step = (s.t1 - s.t0) / TICKS as i32;
    (0..=TICKS).map(|i| s.t0 + step * i as i32).collect()
}

/// `3 Dec` over weeks, `3 Dec 14:00` within two days, `Dec 2025` over a year.
fn tick_label(t: DateTime<Utc>, s: Span) -> String {
    let days = (s.t1 - s.t0).num_days();
    if days <= 2 {
        t.format("%-d %b %H:%M").to_string()
    } else if days > 400 {
        t.format("%b %Y").to_string()
    } else {
        t.format("%-d %b").to_string()
    }
}

/// The amber and red regions as (band, y from, y to): where a value is in that band.
fn zones(tile: &Tile, range: Range, frame: &Frame) -> Vec<(&'static str, f64, f64)> {
    if !tile.amber.is_finite() || !tile.red.is_finite() {
        return Vec::new();
    }
    let y = |v: f64| frame.y(range.frac(v));
    let (amber, red) = (y(tile.amber), y(tile.red));
    if tile.higher_is_worse {
        vec![("amber", amber, red), ("red", red, frame.top)]
    } else {
        vec![("amber", amber, red), ("red", red, frame.bottom)]
    }
}

/// Where the band changed between two consecutive values: (when, from, to).
fn band_changes(tile: &Tile, points: &[Point]) -> Vec<(DateTime<Utc>, &'static str, &'static str)> {
    let band = |v: f64| {
        let (worse_red, worse_amber) = if tile.higher_is_worse {
            (v >= tile.red, v >= tile.amber)
        } else {
            (v <= tile.red, v <= tile.amber)
        };
        if worse_red {
            "red"
        } else if worse_amber {
            "amber"
        } else {
            "green"
        }
    };
    points
        .windows(2)
        .filter_map(|w| {
            let (a, b) = (band(w[0].value), band(w[1].value));
            (a != b).then_some((w[1].at, a, b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, day.clamp(1, 28), 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn tile(values: &[f64]) -> Tile {
        Tile {
            slug: "pp_vap_count".into(),
            module: "tap".into(),
            meaning: "Very Attacked People".into(),
            unit: "count".into(),
            higher_is_worse: true,
            amber: 10.0,
            red: 25.0,
            latest: None,
            history: values
                .iter()
                .enumerate()
                .map(|(i, &value)| Point {
                    at: at(u32::try_from(i + 1).unwrap_or(1)),
                    value,
                })
                .collect(),
            title: "Title".into(),
            owner: None,
            action: None,
            standing: crate::Standing::default(),
        }
    }

    /// Every number in the SVG's coordinate attributes parses and is finite.
    fn assert_drawable(svg: &str) {
        assert!(!svg.contains("NaN"), "{svg}");
        assert!(!svg.contains("inf"), "{svg}");
        for attr in ["x1=\"", "x2=\"", "y1=\"", "y2=\"", "cx=\"", "cy=\""] {
            for part in svg.split(attr).skip(1) {
                let v = part.split('"').next().unwrap_or("");
                let n: f64 = v.parse().unwrap_or(f64::NAN);
                assert!(n.is_finite(), "{attr}{v} in {svg}");
            }
        }
    }

    #[test]
    fn range_includes_thresholds() {
        let r = Range::new([3.0, 14.0, 10.0, 25.0]);
        assert_eq!(r, Range { lo: 3.0, hi: 25.0 });
        assert_eq!(r.frac(25.0), 1.0);
        assert_eq!(r.frac(3.0), 0.0);
    }

    #[test]
    fn range_of_nothing_and_of_equal_values_is_not_empty() {
        assert_eq!(Range::new([]), Range { lo: 0.0, hi: 1.0 });
        assert_eq!(Range::new([f64::NAN, f64::INFINITY]), Range { lo: 0.0, hi: 1.0 });
        let r = Range::new([5.0, 5.0, 5.0]);
        assert!(r.lo < 5.0 && r.hi > 5.0);
        assert_eq!(r.frac(5.0), 0.5);
    }

    #[test]
    fn range_of_huge_values_never_overflows() {
        let r = Range::new([-f64::MAX, f64::MAX]);
        assert_eq!(r.frac(0.0), 0.5);
        assert_eq!(r.frac(f64::MAX), 1.0);
        let r = Range::new([f64::MAX, f64::MAX]);
        assert!(r.frac(f64::MAX).is_finite());
        assert_eq!(r.frac(f64::NAN), 0.5);
    }

    #[test]
    fn sparkline_without_values() {
        let svg = sparkline(&tile(&[])).into_string();
        assert_drawable(&svg);
        assert!(svg.contains("no values yet"));
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("pp_vap_count over the last 30 days: no values; amber at 10, red at 25"));
        assert_eq!(svg.matches("<line").count(), 2, "both thresholds drawn");
        assert!(!svg.contains("<polyline"));
    }

    #[test]
    fn sparkline_with_one_value() {
        let svg = sparkline(&tile(&[12.0])).into_string();
        assert_drawable(&svg);
        assert!(svg.contains("1 value, 12;"));
        assert!(!svg.contains("<polyline"));
        assert!(svg.contains("cx=\"120.0\""), "a single point sits in the middle: {svg}");
    }

    #[test]
    fn sparkline_with_equal_values_and_thresholds() {
        let mut t = tile(&[7.0, 7.0, 7.0]);
        t.amber = 7.0;
        t.red = 7.0;
        let svg = sparkline(&t).into_string();
        assert_drawable(&svg);
        assert!(svg.contains("3 values from 7 to 7, latest 7"));
    }

    #[test]
    fn sparkline_with_huge_and_odd_values() {
        let mut t = tile(&[1e300, -1e300, f64::MAX, f64::NAN, f64::INFINITY, 0.0]);
        t.amber = f64::NAN;
        t.red = f64::NEG_INFINITY;
        let svg = sparkline(&t).into_string();
        assert_drawable(&svg);
        assert!(svg.contains("4 values"), "non-finite values are skipped: {svg}");
        assert_eq!(svg.matches("<line").count(), 0, "non-finite thresholds are not drawn");
    }

    #[test]
    fn sparkline_with_all_points_at_one_instant() {
        let mut t = tile(&[1.0, 2.0]);
        for p in &mut t.history {
            p.at = at(3);
        }
        assert_drawable(&sparkline(&t).into_string());
    }

    #[test]
    fn chart_labels_thresholds_dates_and_axis() {
        let svg = chart(&tile(&[3.0, 14.0, 9.0])).into_string();
        assert_drawable(&svg);
        assert!(svg.contains("viewBox=\"0 0 720 240\""));
        assert!(svg.contains(">amber 10</text>"));
        assert!(svg.contains(">red 25</text>"));
        // A dated axis: five labels from the first value to the last (hours within two days).
        assert!(
            svg.contains(">1 Jan 12:00</text>") && svg.contains(">3 Jan 12:00</text>"),
            "{svg}"
        );
        assert_eq!(svg.matches("class=\"tick\"").count(), TICKS + 1);
        // The amber and red regions shaded; each change of band marked where it happened.
        assert!(svg.contains("zone zone-amber") && svg.contains("zone zone-red"));
        assert_eq!(
            svg.matches("change-mark").count(),
            2,
            "3 → 14 → 9: into amber and out: {svg}"
        );
        assert!(svg.contains("green → amber on 2025-01-02") && svg.contains("amber → green on 2025-01-03"));
        assert!(svg.contains(">25</text>") && svg.contains(">3</text>"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("pp_vap_count over 2 days: 3 values from 3 to 14, latest 9"));
    }

    #[test]
    fn chart_edge_cases() {
        for values in [&[][..], &[4.0], &[4.0, 4.0], &[f64::MAX, -f64::MAX]] {
            let svg = chart(&tile(values)).into_string();
            assert_drawable(&svg);
        }
        let mut t = tile(&[1.0, 2.0]);
        t.amber = 10.0;
        t.red = 10.0;
        let svg = chart(&t).into_string();
        assert_drawable(&svg);
        assert!(svg.contains(">amber 10</text>") && svg.contains(">red 10</text>"));
    }
}
