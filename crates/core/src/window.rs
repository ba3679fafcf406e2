//! Hour-aligned UTC time slots and which of them a run must (re)read: slots never read, slots
//! read only partly (the current hour), and slots read too soon after they ended to include
//! late-indexed events (the look-back). Pure functions of an injected "now".

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};

/// When a slot was last read, and up to what time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMark {
    /// End of the query window that was read.
    pub read_to: DateTime<Utc>,
    /// When it was read.
    pub read_at: DateTime<Utc>,
}

/// One query window for one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    /// The hour-aligned slot this window belongs to.
    pub slot: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Limits of the API being read.
#[derive(Debug, Clone, Copy)]
pub struct WindowRules {
    /// Length of a slot (also the longest allowed query window).
    pub slot: Duration,
    /// Shortest window the API accepts.
    pub min_window: Duration,
    /// How far back a window may start, by the server's clock (e.g. 7 days)…
    pub max_age: Duration,
    /// …minus this margin for clock differences.
    pub safety: Duration,
    /// Re-read a slot until it was read at least this long after it ended (late indexing).
    pub lookback: Duration,
    /// Windows end this long before now: an API may refuse an interval that reaches its
    /// present ("The requested interval is still current").
    pub lag: Duration,
}

/// Floor `t` to the slot boundary.
pub fn slot_of(t: DateTime<Utc>, slot: Duration) -> DateTime<Utc> {
    t.duration_trunc(slot).unwrap_or(t)
}

/// The starts of the last `count` slots up to and including the one holding `now`, oldest first.
pub fn last_slots(now: DateTime<Utc>, slot: Duration, count: u32) -> Vec<DateTime<Utc>> {
    let current = slot_of(now, slot);
    (0..i64::from(count)).rev().map(|i| current - slot * i as i32).collect()
}

impl WindowRules {
    /// The oldest start the server accepts now, with the safety margin.
    pub fn oldest_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.max_age + self.safety
    }

    /// The window that reads `slot` now, clipped to what the API accepts; `None` when the
    /// readable part is shorter than the minimum (nothing can be read for it yet / any more).
    pub fn window_for(&self, now: DateTime<Utc>, slot: DateTime<Utc>) -> Option<Window> {
        let start = slot.max(self.oldest_start(now));
        let end = (slot + self.slot).min(now - self.lag);
        (end - start >= self.min_window).then_some(Window { slot, start, end })
    }

    /// Whether a slot read as `mark` is final: read to its end, late enough after it ended.
    pub fn is_final(&self, slot: DateTime<Utc>, mark: &ReadMark) -> bool {
        let end = slot + self.slot;
        mark.read_to >= end && mark.read_at >= end + self.lookback
    }

    /// The windows to read now for `slots`, newest first, given what was read before.
    pub fn plan(
        &self,
        now: DateTime<Utc>,
        slots: &[DateTime<Utc>],
        mark: impl Fn(DateTime<Utc>) -> Option<ReadMark>,
    ) -> Vec<Window> {
        let mut out: Vec<Window> = slots
            .iter()
            .filter(|s| mark(**s).is_none_or(|m| !self.is_final(**s, &m) && m.read_to.max(m.read_at) < now))
            .filter_map(|s| self.window_for(now, *s))
            .collect();
        out.sort_by_key(|w| std::cmp::Reverse(w.slot));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, s).unwrap()
    }

    const RULES: WindowRules = WindowRules {
        slot: Duration::hours(1),
        min_window: Duration::seconds(30),
        max_age: Duration::days(7),
        safety: Duration::minutes(15),
        lookback: Duration::minutes(30),
        lag: Duration::minutes(1),
    };

    #[test]
    fn slots_are_hour_aligned_and_end_with_the_current_hour() {
        let s = last_slots(at(23, 10, 20, 5), Duration::hours(1), 24);
        assert_eq!(s.len(), 24);
        assert_eq!(s[23], at(23, 10, 0, 0));
        assert_eq!(s[0], at(22, 11, 0, 0));
        assert_eq!(
            last_slots(at(23, 10, 0, 0), Duration::hours(1), 1),
            vec![at(23, 10, 0, 0)]
        );
    }

    #[test]
    fn an_empty_store_reads_every_slot_once_at_most_an_hour_each() {
        let now = at(23, 10, 20, 0);
        let slots = last_slots(now, Duration::hours(1), 168);
        let plan = RULES.plan(now, &slots, |_| None);
        assert_eq!(plan.len(), 168);
        assert_eq!(
            plan[0],
            Window {
                slot: at(23, 10, 0, 0),
                start: at(23, 10, 0, 0),
                // A minute before now: never an interval the API calls "still current".
                end: now - Duration::minutes(1)
            }
        );
        assert_eq!(plan[1].end, at(23, 10, 0, 0), "a past hour is read to its end");
        for w in &plan {
            assert!(w.end - w.start <= Duration::hours(1) && w.end - w.start >= Duration::seconds(30));
            assert!(w.start >= now - Duration::days(7) + Duration::minutes(15), "{w:?}");
        }
    }

    #[test]
    fn the_seven_day_edge_is_clipped_inside_the_safety_margin() {
        // 10:50: the oldest slot (167 h back, at 11:00 seven days ago) starts 5 min before the
        // limit (now − 7 d + 15 min = 11:05), so its window starts at 11:05.
        let now = at(23, 10, 50, 0);
        let plan = RULES.plan(now, &last_slots(now, Duration::hours(1), 168), |_| None);
        let oldest = plan.last().unwrap();
        assert_eq!(oldest.slot, at(16, 11, 0, 0));
        assert_eq!(oldest.start, at(16, 11, 5, 0));
        assert_eq!(oldest.end, at(16, 12, 0, 0));
    }

    #[test]
    fn a_sliver_shorter_than_30_seconds_is_not_requested() {
        let now = at(23, 10, 0, 10);
        let plan = RULES.plan(now, &last_slots(now, Duration::hours(1), 2), |_| None);
        assert_eq!(plan.len(), 1, "the current hour has only 10 s: {plan:?}");
        assert_eq!(plan[0].slot, at(23, 9, 0, 0));
    }

    #[test]
    fn a_second_run_rereads_only_the_current_and_the_look_back_slots() {
        let first = at(23, 10, 20, 0);
        let slots = last_slots(first, Duration::hours(1), 168);
        let marks: std::collections::HashMap<_, _> = RULES
            .plan(first, &slots, |_| None)
            .into_iter()
            .map(|w| {
                (
                    w.slot,
                    ReadMark {
                        read_to: w.end,
                        read_at: first,
                    },
                )
            })
            .collect();
        let second = first + Duration::minutes(1);
        let plan = RULES.plan(second, &last_slots(second, Duration::hours(1), 168), |s| {
            marks.get(&s).copied()
        });
        let slots: Vec<_> = plan.iter().map(|w| w.slot).collect();
        // 09:00–10:00 ended 20 min before the first read: inside the 30 min look-back.
        assert_eq!(slots, vec![at(23, 10, 0, 0), at(23, 9, 0, 0)]);
        // An hour later the 09:00 slot is final, 10:00 is re-read once (now complete), 11:00 is new.
        let later = first + Duration::hours(1);
        let marks2 = |s| {
            if s == at(23, 10, 0, 0) || s == at(23, 9, 0, 0) {
                Some(ReadMark {
                    read_to: second,
                    read_at: second,
                })
            } else {
                marks.get(&s).copied()
            }
        };
        let plan = RULES.plan(later, &last_slots(later, Duration::hours(1), 168), marks2);
        let slots: Vec<_> = plan.iter().map(|w| w.slot).collect();
        assert_eq!(slots, vec![at(23, 11, 0, 0), at(23, 10, 0, 0), at(23, 9, 0, 0)]);
    }

    #[test]
    fn a_gap_after_downtime_reads_exactly_the_missed_slots() {
        let t0 = at(20, 12, 40, 0);
        let marks: std::collections::HashMap<_, _> = last_slots(t0, Duration::hours(1), 168)
            .into_iter()
            .map(|s| {
                // Every slot read in time, except the last one, read partly at t0.
                let end = s + Duration::hours(1);
                let mark = if end > t0 {
                    ReadMark {
                        read_to: t0,
                        read_at: t0,
                    }
                } else {
                    ReadMark {
                        read_to: end,
                        read_at: end + Duration::hours(1),
                    }
                };
                (s, mark)
            })
            .collect();
        // Down for 3 days: every slot after 12:00 on the 20th, plus the look-back, is read.
        let now = at(23, 12, 40, 0);
        let plan = RULES.plan(now, &last_slots(now, Duration::hours(1), 168), |s| {
            marks.get(&s).copied()
        });
        assert_eq!(plan.len(), 72 + 1);
        assert_eq!(plan.last().unwrap().slot, at(20, 12, 0, 0));
    }

    #[test]
    fn final_means_read_to_the_end_and_late_enough() {
        let slot = at(23, 9, 0, 0);
        assert!(RULES.is_final(
            slot,
            &ReadMark {
                read_to: at(23, 10, 0, 0),
                read_at: at(23, 10, 30, 0)
            }
        ));
        assert!(!RULES.is_final(
            slot,
            &ReadMark {
                read_to: at(23, 10, 0, 0),
                read_at: at(23, 10, 29, 59)
            }
        ));
        assert!(!RULES.is_final(
            slot,
            &ReadMark {
                read_to: at(23, 9, 59, 0),
                read_at: at(23, 11, 0, 0)
            }
        ));
    }
}
