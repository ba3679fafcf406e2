//! Small formatting helpers shared by the pages and the charts: numbers, units, times, words.

use chrono::{DateTime, SecondsFormat, Utc};
use maud::{Markup, html};

/// The dash shown for "no value".
pub(crate) const NONE: &str = "—";

/// `12`, `66.67` (two decimals when fractional), `—` for a non-finite value; huge values in
/// scientific notation so they never take a whole line.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return NONE.to_owned();
    }
    if v.abs() >= 1e15 {
        return format!("{v:.3e}");
    }
    let r = (v * 100.0).round() / 100.0;
    if r == 0.0 {
        "0".to_owned() // also for -0.0 and tiny negatives
    } else if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.2}")
    }
}

/// `num`, or the dash for `None`.
pub(crate) fn opt_num(v: Option<f64>) -> String {
    v.map_or_else(|| NONE.to_owned(), num)
}

/// What to write after a number: `%` for percent, `hours`, nothing for a count, else the unit as given.
pub(crate) fn unit_suffix(unit: &str) -> &str {
    match unit {
        "percent" => "%",
        "count" => "",
        other => other,
    }
}

/// A number with its unit, for running text: `66.67 %`, `12`, `3 hours`.
pub(crate) fn with_unit(v: f64, unit: &str) -> String {
    match unit_suffix(unit) {
        "" => num(v),
        u => format!("{} {u}", num(v)),
    }
}

/// Machine form for `<time datetime>`: `2024-05-01T12:00:00Z`.
pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Readable UTC form: `2024-05-01 12:00 UTC`.
pub(crate) fn readable(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Short date for chart axes: `2024-05-01`.
pub(crate) fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// `<time datetime="…">2024-05-01 12:00 UTC</time>`.
pub(crate) fn time(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(iso(t)) { (readable(t)) } }
}

/// How long before `now` the time `at` was, in words: `just now`, `5 min ago`, `3 h ago`,
/// `4 days ago`. A time more than a minute after `now` (clocks disagree) is written in full.
pub(crate) fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds();
    match secs {
        ..-60 => readable(at),
        -60..60 => "just now".to_owned(),
        60..3_600 => format!("{} min ago", secs / 60),
        3_600..172_800 => format!("{} h ago", secs / 3_600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// A time relative to `now` (`3 h ago`), with the full UTC time as its tooltip and in `datetime`.
pub(crate) fn time_ago(at: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! { time datetime=(iso(at)) title=(readable(at)) { (ago(at, now)) } }
}

/// A stored time string: a `<time>` element when it is RFC 3339, else the text as it is
/// (the dash when empty).
pub(crate) fn time_str(s: &str) -> Markup {
    match DateTime::parse_from_rfc3339(s.trim()) {
        Ok(t) => time(t.with_timezone(&Utc)),
        Err(_) if s.trim().is_empty() => html! { (NONE) },
        Err(_) => html! { (s) },
    }
}

/// CSS class for a band word; unknown words get a neutral class.
pub(crate) fn band_class(band: &str) -> &'static str {
    match band {
        "green" => "band band-green",
        "amber" => "band band-amber",
        "red" => "band band-red",
        _ => "band band-other",
    }
}

/// CSS class for a status word (`ok`, `partial`, `failed`, `unlicensed`, `running`).
pub(crate) fn status_class(status: &str) -> &'static str {
    match status {
        "ok" => "st st-ok",
        "partial" => "st st-partial",
        "failed" => "st st-failed",
        "unlicensed" => "st st-unlicensed",
        "running" => "st st-running",
        _ => "st st-other",
    }
}

/// A band written as a word next to a colour swatch: colour is never the only signal.
pub(crate) fn band(word: &str) -> Markup {
    html! {
        span class=(band_class(word)) {
            span.swatch aria-hidden="true" {}
            (word.to_uppercase())
        }
    }
}

/// A status written as a word.
pub(crate) fn status(word: &str) -> Markup {
    html! { span class=(status_class(word)) { (word) } }
}

/// Percent-encode a URL query value the same way as a path segment, so `&`, `=`, `+`, `#` and
/// spaces stay part of the value.
pub(crate) fn query_value(s: &str) -> String {
    path_segment(s)
}

/// `?tenant=NAME` (the name percent-encoded) for a tenant's page, nothing without a tenant.
pub(crate) fn tenant_query(tenant: Option<&str>) -> String {
    tenant.map_or_else(String::new, |t| format!("?tenant={}", query_value(t)))
}

/// Percent-encode one URL path segment (keeps `A-Z a-z 0-9 - . _ ~`), so a slug with odd
/// characters still makes a working relative link.
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
