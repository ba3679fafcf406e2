//! The list/search filters, checked against the documented values BEFORE any call, and the JSON
//! body of `POST /api/v1/tric/incidents`.
//!
//! The server silently ignores unknown filter keys (an old integration sent `disposition` and
//! filtered nothing), so the wire keys are spelled here once and pinned by tests.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::time::filter_time;

pub const SOURCES: &[&str] = &["abuse_mailbox", "tap", "smart_search", "message_csv_upload"];
pub const STATES: &[&str] = &["open_incidents", "closed_incidents", "vap"];
pub const VERDICTS: &[&str] = &[
    "verdict_failed",
    "verdict_low_risk",
    "verdict_manual_review",
    "verdict_threat",
];
pub const DISPOSITIONS: &[&str] = &[
    "bulk",
    "clean",
    "impostor",
    "in_progress",
    "internal",
    "low_risk",
    "malware",
    "manual_review",
    "not_set",
    "phish",
    "scam",
    "simulated_phish",
    "spam",
    "suspicious",
    "tap_false_positive",
    "toad",
    "vendor",
];
pub const CONFIDENCES: &[&str] = &["confidence_high", "confidence_medium", "confidence_low"];
pub const PRIORITIES: &[&str] = &["high", "medium", "low"];

/// Largest page the API serves.
pub const MAX_PAGE: u32 = 200;

/// Sort order on `createdAt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Asc,
    Desc,
}

/// The filters of a list/search. Empty lists are omitted from the body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// `displayId`s (numbers), sent as strings.
    pub incident_ids: Vec<String>,
    pub sources: Vec<String>,
    /// `other_filters`: open_incidents, closed_incidents, vap.
    pub states: Vec<String>,
    pub verdicts: Vec<String>,
    pub dispositions: Vec<String>,
    pub confidences: Vec<String>,
    pub priorities: Vec<String>,
}

/// A filter value that is not allowed: the filter (a field of [`Filters`]), what is wrong and
/// what is accepted. How the filter was given (a flag, a setting) is the caller's to say.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FilterError {
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> FilterError {
    FilterError {
        field,
        message: message.into(),
    }
}

fn check(field: &'static str, values: &[String], allowed: &[&str]) -> Result<(), FilterError> {
    match values.iter().find(|v| !allowed.contains(&v.as_str())) {
        Some(v) => Err(refuse(
            field,
            format!("unknown value `{v}`; accepted: {}", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

impl Filters {
    /// Refuse anything the API would ignore or answer with nothing (`now` is the default end).
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), FilterError> {
        if let Some(id) = self
            .incident_ids
            .iter()
            .find(|id| id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(refuse(
                "incident_ids",
                format!(
                    "`{id}` is not a display id; give the numeric ids shown in the CTR console (e.g. 781,782), \
                     not UUIDs (details by UUID: `kri ctr incidents get UUID`)"
                ),
            ));
        }
        check("sources", &self.sources, SOURCES)?;
        check("states", &self.states, STATES)?;
        check("verdicts", &self.verdicts, VERDICTS)?;
        check("dispositions", &self.dispositions, DISPOSITIONS)?;
        check("confidences", &self.confidences, CONFIDENCES)?;
        check("priorities", &self.priorities, PRIORITIES)?;
        if self.states.iter().any(|s| s == "open_incidents") && self.states.iter().any(|s| s == "closed_incidents") {
            return Err(refuse(
                "states",
                "open_incidents and closed_incidents together make the CTR API return nothing; choose one, \
                 or neither for both",
            ));
        }
        if self.end.is_some() && self.start.is_none() {
            return Err(refuse("end_time", "an end time needs a start time too"));
        }
        if let Some(s) = self.start {
            let (e, what) = match self.end {
                Some(e) => (e, "the end time"),
                None => (now, "now (the default end time)"),
            };
            if s > e {
                return Err(refuse(
                    "start_time",
                    format!(
                        "the start time ({}) is after {what} ({}): the range would be empty",
                        filter_time(&s),
                        filter_time(&e)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The `filters` object: only non-empty keys, under their exact wire names.
    pub fn wire(&self, now: DateTime<Utc>) -> Value {
        let mut f = Map::new();
        if let Some(start) = self.start {
            let end = self.end.unwrap_or(now);
            f.insert(
                "time_range_filter".into(),
                json!({"start": filter_time(&start), "end": filter_time(&end)}),
            );
        }
        for (key, values) in [
            ("incident_id_filters", &self.incident_ids),
            ("source_filters", &self.sources),
            ("other_filters", &self.states),
            ("verdict_filters", &self.verdicts),
            ("disposition_filters", &self.dispositions),
            ("confidence_filters", &self.confidences),
            ("priority_filters", &self.priorities),
        ] {
            if !values.is_empty() {
                f.insert(key.into(), json!(values));
            }
        }
        Value::Object(f)
    }

    /// The whole request body for rows `[start_row, end_row)`.
    pub fn body(&self, now: DateTime<Utc>, start_row: u32, end_row: u32, sort: Sort) -> Value {
        let sort = match sort {
            Sort::Asc => "asc",
            Sort::Desc => "desc",
        };
        json!({
            "filters": self.wire(now),
            "startRow": start_row,
            "endRow": end_row,
            "sortParams": [{"sort": sort, "colId": "createdAt"}],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 11, 26, 16, 18, 7).unwrap()
    }

    #[test]
    fn every_filter_goes_under_its_wire_key_and_dispositions_under_disposition_filters() {
        let f = Filters {
            start: Some(now() - chrono::Duration::days(3)),
            end: None,
            incident_ids: v(&["781", "782"]),
            sources: v(&["tap"]),
            states: v(&["open_incidents", "vap"]),
            verdicts: v(&["verdict_threat"]),
            dispositions: v(&["phish", "toad"]),
            confidences: v(&["confidence_high"]),
            priorities: v(&["high"]),
        };
        f.validate(now()).unwrap();
        assert_eq!(
            f.body(now(), 0, 50, Sort::Asc),
            json!({
                "filters": {
                    "time_range_filter": {"start": "2024-11-23 16:18:07", "end": "2024-11-26 16:18:07"},
                    "incident_id_filters": ["781", "782"],
                    "source_filters": ["tap"],
                    "other_filters": ["open_incidents", "vap"],
                    "verdict_filters": ["verdict_threat"],
                    "disposition_filters": ["phish", "toad"],
                    "confidence_filters": ["confidence_high"],
                    "priority_filters": ["high"]
                },
                "startRow": 0, "endRow": 50,
                "sortParams": [{"sort": "asc", "colId": "createdAt"}]
            })
        );
        let wire = f.wire(now());
        assert!(wire.get("disposition").is_none());
    }

    #[test]
    fn empty_filters_are_omitted() {
        let b = Filters::default().body(now(), 200, 400, Sort::Desc);
        assert_eq!(b["filters"], json!({}));
        assert_eq!(b["sortParams"][0]["sort"], "desc");
    }

    #[test]
    fn open_and_closed_together_are_refused_with_the_reason() {
        let f = Filters {
            states: v(&["open_incidents", "closed_incidents"]),
            ..Default::default()
        };
        assert!(f.validate(now()).unwrap_err().message.contains("return nothing"));
    }

    #[test]
    fn unknown_values_name_the_filter_and_the_accepted_ones() {
        let f = Filters {
            dispositions: v(&["phishy"]),
            ..Default::default()
        };
        let e = f.validate(now()).unwrap_err();
        assert_eq!(e.field, "dispositions");
        assert!(
            e.message.contains("`phishy`") && e.message.contains("simulated_phish"),
            "{e}"
        );
        let f = Filters {
            sources: v(&["tap_alert"]),
            ..Default::default()
        };
        assert!(
            f.validate(now()).is_err(),
            "tap_alert is an answer value, the filter is tap"
        );
        let f = Filters {
            incident_ids: v(&["440def43-c322-42ba-a6d6-a2306128ea3b"]),
            ..Default::default()
        };
        assert!(f.validate(now()).unwrap_err().message.contains("not a display id"));
    }

    #[test]
    fn time_range_must_be_in_order_and_end_needs_start() {
        let f = Filters {
            start: Some(now()),
            end: Some(now() - chrono::Duration::hours(1)),
            ..Default::default()
        };
        assert!(f.validate(now()).unwrap_err().message.contains("after"));
        let f = Filters {
            end: Some(now()),
            ..Default::default()
        };
        assert!(f.validate(now()).is_err());
    }
}
