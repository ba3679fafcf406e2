//! The three CTR time formats, and the free-text times people type.
//!
//! - filter times (what we send): `YYYY-MM-DD HH:MM:SS`, UTC;
//! - incident times: ISO 8601 with an offset, `2024-01-01T10:00:00.000+00:00`;
//! - activity times: NO offset, 3 or 6 fraction digits, `2024-01-01T10:00:00.000000` (UTC).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// A filter time as the CTR API wants it.
pub fn filter_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Parse any time the CTR API sends: with an offset or `Z`, or without (read as UTC), with a
/// `T` or a space, with 0 to 9 fraction digits. `None` for anything else.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(t, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(n.and_utc());
        }
    }
    None
}

/// A time a person typed: a duration back from `now` (`3 days`, `12 hours`, `30m`, `2 days
/// ago`), `now`, an ISO date-time (with or without offset, read as UTC without) or a date.
pub fn parse_when(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(d) = parse_time(t) {
        return Ok(d);
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    let ago = t.strip_suffix("ago").unwrap_or(t).trim();
    match kri_core::config::parse_duration(ago) {
        Ok(d) => chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .ok_or_else(|| format!("`{text}` is too far back")),
        Err(_) => Err(format!(
            "`{text}` is not a time: write a duration back from now (`3 days`, `12 hours`, `30m`) or a date \
             (`2024-11-26`, `2024-11-26T16:18:07Z`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, h, m, s).unwrap()
    }

    #[test]
    fn filter_times_are_utc_with_a_space_and_no_fraction() {
        let t = at(10, 0, 7) + chrono::Duration::milliseconds(999);
        assert_eq!(filter_time(&t), "2024-01-01 10:00:07");
        assert_eq!(parse_time("2024-01-01 10:00:07"), Some(at(10, 0, 7)));
    }

    #[test]
    fn incident_times_with_an_offset_parse() {
        assert_eq!(parse_time("2024-01-01T10:00:00.000+00:00"), Some(at(10, 0, 0)));
        assert_eq!(parse_time("2024-01-01T12:00:00.000+02:00"), Some(at(10, 0, 0)));
        assert_eq!(parse_time("2024-01-01T10:00:00Z"), Some(at(10, 0, 0)));
        assert_eq!(parse_time("2024-01-01T10:00:00.000+0000"), Some(at(10, 0, 0)));
    }

    #[test]
    fn activity_times_without_offset_with_3_or_6_fraction_digits_parse_as_utc() {
        assert_eq!(parse_time("2024-01-01T10:00:10.000"), Some(at(10, 0, 10)));
        assert_eq!(
            parse_time("2024-01-01T10:00:00.123456"),
            Some(at(10, 0, 0) + chrono::Duration::microseconds(123_456))
        );
        assert_eq!(parse_time("2024-01-01T10:00:00"), Some(at(10, 0, 0)));
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        for bad in ["", "yesterday-ish", "2024-13-01T00:00:00Z", "10:00", "null"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn free_text_times() {
        let now = at(12, 0, 0);
        assert_eq!(parse_when("3 days", now).unwrap(), now - chrono::Duration::days(3));
        assert_eq!(parse_when("12 hours", now).unwrap(), now - chrono::Duration::hours(12));
        assert_eq!(parse_when("2 days ago", now).unwrap(), now - chrono::Duration::days(2));
        assert_eq!(parse_when("now", now).unwrap(), now);
        assert_eq!(parse_when("2024-01-01T10:00:00Z", now).unwrap(), at(10, 0, 0));
        assert_eq!(parse_when("2024-01-01", now).unwrap(), at(0, 0, 0));
        let e = parse_when("last tuesday", now).unwrap_err();
        assert!(e.contains("`last tuesday`") && e.contains("3 days"), "{e}");
    }
}
