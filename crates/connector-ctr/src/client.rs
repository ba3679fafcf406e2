//! The CTR API: list/search pages and incident details. The client-side rate limit and the
//! back-off on 429 are the `ctr` pool's (declared by the connector, enforced by core).

use chrono::{DateTime, Utc};
use kri_core::{HttpClient, HttpError, Request};
use serde::Deserialize;
use serde_json::Value;

use crate::filters::{Filters, MAX_PAGE, Sort};
use crate::time::parse_time;

pub const LIST_PATH: &str = "/api/v1/tric/incidents";

/// One page of the list answer. `incidents` is `None` when the answer had no array (missing or
/// null): that is not the same as an empty page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Page {
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub incidents: Option<Vec<Value>>,
}

impl Page {
    /// The incidents on the page (none when the answer had no array).
    pub fn rows(self) -> Vec<Value> {
        self.incidents.unwrap_or_default()
    }
}

/// The incident fields the connector reasons about; the rest is kept as the API sent it.
pub struct View<'a>(pub &'a Value);

impl<'a> View<'a> {
    pub fn id(&self) -> Option<&'a str> {
        self.0.get("id").and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    pub fn str(&self, key: &str) -> Option<&'a str> {
        self.0.get(key).and_then(Value::as_str)
    }
    pub fn time(&self, key: &str) -> Option<DateTime<Utc>> {
        self.str(key).and_then(parse_time)
    }
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.time("createdAt")
    }
}

/// A CTR API client for one run.
#[derive(Clone, Debug)]
pub struct CtrClient {
    /// Metered in the run's `ctr` pool (its per-minute limit and 429 back-off included).
    pub http: HttpClient,
}

impl CtrClient {
    /// A JSON answer; a 204 or a `null` is not one.
    async fn send(&self, request: Request) -> Result<Value, HttpError> {
        let endpoint = request.endpoint();
        match self.http.call_json::<Value>(request).await? {
            Value::Null => Err(HttpError::Decode {
                endpoint,
                detail: "the API answered 204 No Content (or null) where an answer was expected".into(),
            }),
            v => Ok(v),
        }
    }

    /// Rows `[start_row, end_row)` (at most 200) of a list/search.
    pub async fn page(
        &self,
        filters: &Filters,
        now: DateTime<Utc>,
        start_row: u32,
        end_row: u32,
        sort: Sort,
    ) -> Result<Page, HttpError> {
        let end_row = end_row.min(start_row + MAX_PAGE);
        let body = filters.body(now, start_row, end_row, sort);
        let answer = self.send(Request::post(LIST_PATH).json(body)).await?;
        let page: Page = serde_json::from_value(answer).map_err(|e| HttpError::Decode {
            endpoint: format!("POST {LIST_PATH}"),
            detail: format!("{e} (the API may have changed)"),
        })?;
        if page.total.is_none() && page.incidents.is_none() {
            // Not an empty page: an answer that says nothing. Counting it as 0 would lie.
            return Err(HttpError::Decode {
                endpoint: format!("POST {LIST_PATH}"),
                detail: "the answer has neither `total` nor `incidents`, so nothing can be counted from it (the API \
                         may have changed)"
                    .into(),
            });
        }
        Ok(page)
    }

    /// Up to `limit` incidents, paging 200 at a time until a short page. Returns them and the
    /// `total` the API reported.
    pub async fn list(
        &self,
        filters: &Filters,
        now: DateTime<Utc>,
        limit: u32,
        sort: Sort,
    ) -> Result<(Vec<Value>, Option<u64>), HttpError> {
        let mut out: Vec<Value> = Vec::new();
        let mut total = None;
        let mut start = 0u32;
        while (out.len() as u32) < limit {
            let want = (limit - out.len() as u32).min(MAX_PAGE);
            let page = self.page(filters, now, start, start + want, sort).await?;
            total = page.total.or(total);
            let rows = page.rows();
            let got = rows.len() as u32;
            out.extend(rows.into_iter().take(want as usize));
            start += got;
            if got < want || total.is_some_and(|t| u64::from(start) >= t) {
                break;
            }
        }
        Ok((out, total))
    }

    /// `GET /api/v1/tric/incidents/{uuid}`: `{summary, comments, activities}`.
    /// Anything but a UUID is refused here, before any request (the bearer token goes with it).
    pub async fn get(&self, uuid: &str) -> Result<Value, HttpError> {
        if !is_uuid(uuid) {
            return Err(HttpError::Decode {
                endpoint: format!("GET {LIST_PATH}/{{uuid}}"),
                detail: format!("{uuid:?} is not an incident id (a UUID); nothing was asked for it"),
            });
        }
        self.send(Request::get(format!("{LIST_PATH}/{uuid}"))).await
    }
}

/// A UUID as CTR writes them: checked before it goes in a path.
pub use kri_core::ids::is_uuid;

/// The list row enriched with the details of `get`: summary fields win, comments and
/// activities are added, each exactly as the API sent it (a null stays null).
pub fn merge_details(row: &Value, details: &Value) -> Value {
    let mut merged = row.as_object().cloned().unwrap_or_default();
    if let Some(summary) = details.get("summary").and_then(Value::as_object) {
        for (k, v) in summary {
            merged.insert(k.clone(), v.clone());
        }
    }
    for key in ["comments", "activities"] {
        if let Some(v) = details.get(key) {
            merged.insert(key.into(), v.clone());
        }
    }
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_enrich_the_row_as_sent() {
        let row = json!({"id": "a", "title": "t", "assignedUserName": "u"});
        let details = json!({"summary": {"id": "a", "title": "t2", "openedAt": "x"}, "comments": null});
        let m = merge_details(&row, &details);
        assert_eq!(m["title"], "t2");
        assert_eq!(m["assignedUserName"], "u");
        assert_eq!(m["openedAt"], "x");
        // As the API sent them: a null comment list stays null, absent activities stay absent.
        assert_eq!(m["comments"], Value::Null);
        assert!(m.get("comments").is_some() && m.get("activities").is_none(), "{m}");
    }

    #[test]
    fn a_page_with_null_incidents_is_empty() {
        let p: Page = serde_json::from_value(json!({"total": null, "incidents": null})).unwrap();
        assert!(p.incidents.is_none() && p.total.is_none());
        assert!(p.rows().is_empty());
    }
}
