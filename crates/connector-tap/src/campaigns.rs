//! Credential-phishing campaigns over 30 days: campaign ids per UTC day (≤ 1 day per request,
//! 404 = none that day), remembered per day; campaign details cached forever.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use kri_core::store::{StateValue, fmt_time};
use kri_core::window::{ReadMark, Window, WindowRules, last_slots};
use kri_core::{HttpClient, HttpError, KriError, KriResult, Measurement, PlannedCalls, RunContext};
use serde::{Deserialize, Serialize};

use crate::{CAMPAIGN_IDS_POOL, CAMPAIGN_POOL};

/// The longest campaign id asked about (they are UUIDs, 36 characters).
const MAX_ID_LEN: usize = 128;
const IDS_PATH: &str = "/v2/campaign/ids";
const DAY_PREFIX: &str = "campaign-day/";
const DETAIL_PREFIX: &str = "campaign/";
const PAGE_SIZE: usize = 200;
const DAYS: u32 = 30;

/// Decides "credential phishing" from campaign names (configurable).
#[derive(Debug, Clone)]
pub struct Matcher {
    pub contains: Vec<String>,
    pub equals: Vec<String>,
}

impl Matcher {
    fn matches(&self, d: &Details) -> bool {
        d.names.iter().any(|n| {
            let n = n.trim().to_lowercase();
            self.contains.iter().any(|p| n.contains(&p.to_lowercase()))
                || self.equals.iter().any(|p| n == p.to_lowercase())
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DayFacts {
    mark: ReadMark,
    ids: Vec<String>,
}

impl StateValue for DayFacts {
    const VERSION: u32 = 1;
}

/// The names a campaign is matched on (families, techniques, member types and subTypes); kept
/// rather than a verdict, so a changed matcher needs no new call.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Details {
    names: Vec<String>,
}

impl StateValue for Details {
    const VERSION: u32 = 1;
}

/// `{"campaigns": [...]}`. An answer without the array is not "no campaigns": it fails.
#[derive(Debug, Deserialize)]
struct IdsAnswer {
    campaigns: Option<Vec<CampaignRef>>,
}

#[derive(Debug, Deserialize)]
struct CampaignRef {
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CampaignAnswer {
    families: Option<Vec<Named>>,
    techniques: Option<Vec<Named>>,
    campaign_members: Option<Vec<Member>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Named {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Member {
    #[serde(rename = "type")]
    kind: Option<String>,
    sub_type: Option<String>,
}

pub struct Campaigns<'a> {
    /// Not metered: each call is metered in its own pool here.
    pub http: HttpClient,
    /// Days and details read at once.
    pub concurrency: usize,
    pub lookback: Duration,
    pub matcher: &'a Matcher,
}

fn day_key(day: DateTime<Utc>) -> String {
    format!("{DAY_PREFIX}{}", day.date_naive())
}

impl Campaigns<'_> {
    fn rules(&self) -> WindowRules {
        WindowRules {
            slot: Duration::days(1),
            min_window: Duration::seconds(30),
            max_age: Duration::days(3650),
            safety: Duration::zero(),
            lookback: self.lookback,
            lag: crate::feed::LAG,
        }
    }

    /// The stored campaign ids per day. Rows that cannot be read are dropped (and so read again).
    async fn load(ctx: &RunContext) -> Result<BTreeMap<DateTime<Utc>, DayFacts>, KriError> {
        let rows: Vec<(String, DayFacts)> = ctx.state.scan(DAY_PREFIX).await?;
        let mut days = BTreeMap::new();
        for (k, f) in rows {
            let day = NaiveDate::parse_from_str(&k[DAY_PREFIX.len()..], "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0));
            match day {
                Some(d) => {
                    days.insert(d.and_utc(), f);
                }
                None => ctx.state.drop_unreadable(&k, "not a campaign day").await?,
            }
        }
        Ok(days)
    }

    fn windows(&self, now: DateTime<Utc>, days: &BTreeMap<DateTime<Utc>, DayFacts>) -> Vec<Window> {
        self.rules().plan(now, &last_slots(now, Duration::days(1), DAYS), |d| {
            days.get(&d).map(|f| f.mark)
        })
    }

    pub async fn plan(&self, ctx: &RunContext) -> Result<Vec<PlannedCalls>, KriError> {
        let days = Self::load(ctx).await?;
        let w = self.windows(ctx.clock.now(), &days);
        Ok(vec![PlannedCalls {
            pool: CAMPAIGN_IDS_POOL.name,
            limit: CAMPAIGN_IDS_POOL.limit,
            calls: w.len() as u32,
            detail: w
                .iter()
                .map(|w| format!("GET {IDS_PATH}?interval={}/{}", fmt_time(&w.start), fmt_time(&w.end)))
                .collect(),
        }])
    }

    pub async fn count(&self, ctx: &RunContext) -> KriResult {
        let now = ctx.clock.now();
        let mut days = Self::load(ctx).await?;
        let plan = self.windows(now, &days);
        let mut errors = Vec::new();
        let mut failed = 0;
        // Days `concurrency` at a time; none starts once the pool is stopped.
        let reads = futures_util::stream::iter(plan.iter().copied())
            .map(|w| async move {
                if ctx.budget.is_stopped(&CAMPAIGN_IDS_POOL) {
                    return (w, None);
                }
                (w, Some(self.ids_for(ctx, &w).await))
            })
            .buffer_unordered(self.concurrency.max(1));
        let mut reads = std::pin::pin!(reads);
        while let Some((w, result)) = reads.next().await {
            let Some(result) = result else {
                failed += 1;
                continue;
            };
            match result {
                Ok(ids) => {
                    let f = DayFacts {
                        mark: ReadMark {
                            read_to: w.end,
                            read_at: now,
                        },
                        ids,
                    };
                    ctx.state.put(now, &day_key(w.slot), &f).await?;
                    days.insert(w.slot, f);
                }
                Err(e) => {
                    failed += 1;
                    errors.push(e);
                }
            }
        }
        if let Some(e) = KriError::telling(&errors) {
            return Err(KriError::Other(format!(
                "{failed} of {DAYS} campaign days could not be read: {e}"
            )));
        }
        let wanted: Vec<DateTime<Utc>> = last_slots(now, Duration::days(1), DAYS);
        let ids: BTreeSet<&String> = wanted.iter().filter_map(|d| days.get(d)).flat_map(|f| &f.ids).collect();
        let mut matched = 0;
        let mut unknown = 0;
        let ids: Vec<String> = ids.into_iter().cloned().collect();
        let details = futures_util::stream::iter(ids)
            .map(|id| async move { self.details(ctx, &id).await })
            .buffer_unordered(self.concurrency.max(1));
        let mut details = std::pin::pin!(details);
        while let Some(d) = details.next().await {
            match d? {
                Some(d) if self.matcher.matches(&d) => matched += 1,
                Some(_) => {}
                None => unknown += 1,
            }
        }
        // Days older than the window can never count again.
        let horizon = now - Duration::days(i64::from(DAYS) + 1);
        for d in days.keys().filter(|d| **d < horizon) {
            ctx.state.delete_prefix(&day_key(*d)).await?;
        }
        Ok(if unknown > 0 {
            Measurement::with_warning(
                matched as f64,
                format!(
                    "{unknown} campaign(s) listed by {IDS_PATH} answered 404 on GET /v2/campaign/{{id}} and were not counted"
                ),
            )
        } else {
            Measurement::value(matched as f64)
        })
    }

    /// Campaign ids for one day window, paging until a short page. 404 = no campaign.
    async fn ids_for(&self, ctx: &RunContext, w: &Window) -> Result<Vec<String>, KriError> {
        let interval = format!("{}/{}", fmt_time(&w.start), fmt_time(&w.end));
        let http = self.http.metered(&ctx.budget, CAMPAIGN_IDS_POOL);
        let mut ids = BTreeSet::new();
        for page in 1.. {
            let (size, page_s) = (PAGE_SIZE.to_string(), page.to_string());
            let query = [
                ("interval", interval.as_str()),
                ("size", size.as_str()),
                ("page", page_s.as_str()),
            ];
            // 404 and 204 are the API saying "no campaign in this interval".
            let got = match http.get_json::<Option<IdsAnswer>>(IDS_PATH, &query).await {
                Err(HttpError::NotFound { .. }) | Ok(None) => Vec::new(),
                Ok(Some(IdsAnswer { campaigns: Some(c) })) => c,
                Ok(Some(IdsAnswer { campaigns: None })) => {
                    return Err(KriError::Other(format!(
                        "GET {IDS_PATH}: the answer has no `campaigns` array; nothing was counted for {interval}"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            let n = got.len();
            ids.extend(got.into_iter().filter_map(|c| c.id).filter(|id| !id.is_empty()));
            if n < PAGE_SIZE {
                break;
            }
        }
        Ok(ids.into_iter().collect())
    }

    /// Cached details, or one GET (not rate-limited). `None` when the campaign is unknown (404).
    async fn details(&self, ctx: &RunContext, id: &str) -> Result<Option<Details>, KriError> {
        let key = format!("{DETAIL_PREFIX}{id}");
        if let Some(d) = ctx.state.get::<Details>(&key).await? {
            return Ok(Some(d));
        }
        // Written as ONE path segment, whatever it holds: `..\people\vap` once reached
        // /v2/people/vap. An id no path can hold, or absurdly long, is skipped.
        let Some(segment) = kri_core::ids::path_segment(id).filter(|_| id.len() <= MAX_ID_LEN) else {
            tracing::warn!(id = ?id, "{IDS_PATH} listed a campaign id no request can carry; skipped");
            return Ok(None);
        };
        let http = self.http.metered(&ctx.budget, CAMPAIGN_POOL);
        let a: CampaignAnswer = match http.get_json(&format!("/v2/campaign/{segment}"), &[]).await {
            Ok(a) => a,
            Err(HttpError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut names: Vec<String> = a
            .families
            .into_iter()
            .flatten()
            .chain(a.techniques.into_iter().flatten())
            .filter_map(|n| n.name)
            .collect();
        for m in a.campaign_members.into_iter().flatten() {
            names.extend(m.kind);
            names.extend(m.sub_type);
        }
        let d = Details { names };
        ctx.state.put(ctx.clock.now(), &key, &d).await?;
        Ok(Some(d))
    }
}
