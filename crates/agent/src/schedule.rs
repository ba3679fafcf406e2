//! When runs happen: slots aligned to the clock (UTC), a small fixed jitter per connector, and
//! back-off after failures. Pure functions of "now", so the tests can pin every instant.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The first slot strictly after `now`. Slots are `offset + jitter + k·period` seconds from the
/// Unix epoch: an hourly schedule with `at = ":05"` runs at 10:05, 11:05…; a daily one with
/// `at = "02:30"` at 02:30 UTC every day; a period that does not divide a day keeps its own
/// rhythm from the epoch. Never panics, whatever the period.
pub fn next_slot(now: DateTime<Utc>, period: Duration, offset: Duration, jitter: Duration) -> DateTime<Utc> {
    let p = i64::try_from(period.as_secs()).unwrap_or(i64::MAX).max(60);
    let o = i64::try_from(offset.as_secs()).unwrap_or(0).rem_euclid(p);
    let j = i64::try_from(jitter.as_secs()).unwrap_or(0).min(p - 1);
    let shift = o.saturating_add(j);
    let k = now.timestamp().saturating_sub(shift).div_euclid(p).saturating_add(1);
    k.checked_mul(p)
        .and_then(|t| t.checked_add(shift))
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .or_else(|| now.checked_add_signed(chrono::Duration::days(1)))
        .unwrap_or(now)
}

/// The newest slot at or before `now` (the slot the current period's run belongs to).
pub fn prev_slot(now: DateTime<Utc>, period: Duration, offset: Duration, jitter: Duration) -> DateTime<Utc> {
    let next = next_slot(now, period, offset, jitter);
    let secs = i64::try_from(period.as_secs()).unwrap_or(i64::MAX).max(60);
    chrono::Duration::try_seconds(secs)
        .and_then(|p| next.checked_sub_signed(p))
        .unwrap_or(next)
}

/// A connector's jitter: the same every time for one module (so its slot is predictable), at
/// most a minute and at most a twentieth of its period, so connectors due at the same minute
/// do not all call at the same second.
pub fn jitter(module: &str, period: Duration) -> Duration {
    let cap = (period.as_secs() / 20).min(60);
    if cap == 0 {
        return Duration::ZERO;
    }
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = module.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Duration::from_secs(hash % cap)
}

/// How long to wait before retrying after `failures` failed runs in a row (1, 2, …): 1 min,
/// 2 min, 4 min … up to an hour, and never past the next regular slot.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    Duration::from_secs(60 * (1u64 << exp)).min(Duration::from_secs(3600))
}

/// When to run next after a run that ended at `now`: the next slot, or sooner, after a
/// failure, by the back-off.
pub fn after_run(
    now: DateTime<Utc>,
    failures: u32,
    period: Duration,
    offset: Duration,
    jitter: Duration,
) -> DateTime<Utc> {
    let slot = next_slot(now, period, offset, jitter);
    if failures == 0 {
        return slot;
    }
    let retry = chrono::Duration::from_std(backoff(failures))
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(slot);
    retry.min(slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).expect("time").to_utc()
    }
    const H: Duration = Duration::from_secs(3600);
    const D: Duration = Duration::from_secs(86_400);
    const Z: Duration = Duration::ZERO;

    #[test]
    fn the_previous_slot_is_the_current_periods() {
        let now = at("2026-11-23T10:20:00Z");
        assert_eq!(
            prev_slot(now, H, Duration::from_secs(5 * 60), Z),
            at("2026-11-23T10:05:00Z")
        );
        assert_eq!(
            prev_slot(now, D, Duration::from_secs(2 * 3600), Z),
            at("2026-11-23T02:00:00Z")
        );
        let exact = at("2026-11-23T11:05:00Z");
        assert_eq!(
            prev_slot(exact, H, Duration::from_secs(5 * 60), Z),
            exact,
            "a slot is its own"
        );
        let _ = prev_slot(DateTime::<Utc>::MIN_UTC, Duration::MAX, Duration::MAX, Duration::MAX);
    }

    #[test]
    fn hourly_and_daily_slots_are_aligned_to_the_clock() {
        let now = at("2026-11-23T10:20:00Z");
        assert_eq!(next_slot(now, H, Z, Z), at("2026-11-23T11:00:00Z"));
        assert_eq!(
            next_slot(now, H, Duration::from_secs(5 * 60), Z),
            at("2026-11-23T11:05:00Z")
        );
        assert_eq!(
            next_slot(now, H, Duration::from_secs(25 * 60), Z),
            at("2026-11-23T10:25:00Z")
        );
        assert_eq!(
            next_slot(now, D, Duration::from_secs(2 * 3600 + 1800), Z),
            at("2026-11-24T02:30:00Z")
        );
        assert_eq!(
            next_slot(now, D, Duration::from_secs(11 * 3600), Z),
            at("2026-11-23T11:00:00Z")
        );
        assert_eq!(
            next_slot(now, Duration::from_secs(1800), Z, Duration::from_secs(17)),
            at("2026-11-23T10:30:17Z")
        );
        // exactly on a slot: the NEXT one (the current one is being run)
        assert_eq!(
            next_slot(at("2026-11-23T11:00:00Z"), H, Z, Z),
            at("2026-11-23T12:00:00Z")
        );
    }

    #[test]
    fn slots_do_not_drift_whatever_the_run_took() {
        let mut t = at("2026-11-23T10:20:00Z");
        for _ in 0..50 {
            let slot = next_slot(t, H, Duration::from_secs(300), Z);
            assert_eq!(slot.format("%M:%S").to_string(), "05:00");
            t = slot + chrono::Duration::seconds(1234); // a slow run
        }
    }

    #[test]
    fn a_huge_schedule_never_panics() {
        let now = at("2026-11-23T10:20:00Z");
        for period in [Duration::from_secs(366 * 86_400), Duration::MAX, Duration::ZERO] {
            let next = next_slot(now, period, Duration::MAX, Duration::MAX);
            assert!(next > now, "{period:?}: {next}");
            let _ = after_run(now, u32::MAX, period, Duration::MAX, Duration::MAX);
        }
        let far = DateTime::<Utc>::MAX_UTC;
        let _ = next_slot(far, D, Z, Z);
        let _ = after_run(far, 3, D, Z, Z);
    }

    #[test]
    fn jitter_is_small_stable_and_differs_between_modules() {
        assert_eq!(jitter("tap", H), jitter("tap", H));
        assert!(jitter("tap", H) < Duration::from_secs(60));
        assert!(jitter("tap", Duration::from_secs(60)) < Duration::from_secs(3));
        let all: std::collections::BTreeSet<_> = ["tap", "efd", "clear", "ctr"].iter().map(|m| jitter(m, D)).collect();
        assert!(all.len() > 1, "{all:?}");
    }

    #[test]
    fn failures_back_off_and_never_past_the_next_slot() {
        let now = at("2026-11-23T10:20:00Z");
        assert_eq!(after_run(now, 0, D, Z, Z), at("2026-11-24T00:00:00Z"));
        assert_eq!(after_run(now, 1, D, Z, Z), at("2026-11-23T10:21:00Z"));
        assert_eq!(after_run(now, 2, D, Z, Z), at("2026-11-23T10:22:00Z"));
        assert_eq!(after_run(now, 3, D, Z, Z), at("2026-11-23T10:24:00Z"));
        assert_eq!(after_run(now, 30, D, Z, Z), at("2026-11-23T11:20:00Z"));
        assert_eq!(after_run(now, 30, H, Z, Z), at("2026-11-23T11:00:00Z"));
    }
}
