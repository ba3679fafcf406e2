//! KRI practice on every value output: the title and owner the tenant gives a KRI, and on a
//! KRI's newest value where it stands now (since when in its band, stale, acknowledged,
//! overdue). One function, used by the CLI and the API alike.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kri_config::Tenant;
use kri_core::report::{Acknowledged, ValueRow};
use kri_core::store::{Ack, KriState, Store, StoreError};
use kri_core::{Band, RespondWithin};

/// Where the KRIs stand now, read once for a listing.
pub struct Standing {
    states: HashMap<(String, String), KriState>,
    acks: HashMap<(String, String), Ack>,
    now: DateTime<Utc>,
}

impl Standing {
    /// Read the read model and the acknowledgements in force (the handle's tenant's, or all).
    pub async fn read(store: &Store, now: DateTime<Utc>) -> Result<Standing, StoreError> {
        let states = store
            .kri_states()
            .await?
            .into_iter()
            .map(|s| ((s.tenant.clone(), s.slug.clone()), s))
            .collect();
        let acks = store
            .current_acks(now)
            .await?
            .into_iter()
            .map(|a| ((a.tenant.clone(), a.slug.clone()), a))
            .collect();
        Ok(Standing { states, acks, now })
    }

    /// Fill the practice fields of `rows` from `tenants` (each row's own tenant).
    pub fn annotate(&self, rows: &mut [ValueRow], tenants: &[Tenant]) {
        for row in rows {
            let Some(tenant) = tenants.iter().find(|t| t.name == row.tenant) else {
                continue;
            };
            let practice = tenant.practice_for(&row.slug);
            if let Some(title) = &practice.title {
                row.title = title.clone();
            }
            row.owner = practice.owner.clone();
            let key = (row.tenant.clone(), row.slug.clone());
            let Some(state) = self.states.get(&key).filter(|s| s.newest_at == row.measured_at) else {
                continue;
            };
            let schedule = tenant
                .modules
                .iter()
                .find(|m| m.reg.module == row.module)
                .map(|m| m.schedule);
            let acknowledged = self.acks.get(&key).map(|a| Acknowledged {
                by: a.by.clone(),
                note: a.note.clone(),
                at: a.at.clone(),
                until: a.until.clone(),
            });
            let look = Look {
                state,
                schedule,
                respond_within: practice.respond_within,
                acknowledged: acknowledged.is_some(),
                now: self.now,
            };
            // Since when in its band: none without a band (unlicensed, never good).
            row.band_since = state.band.as_ref().and(state.band_since.clone());
            row.stale = look.stale();
            row.overdue = look.overdue();
            row.acknowledged = acknowledged;
        }
    }
}

/// One KRI's standing, judged.
struct Look<'a> {
    state: &'a KriState,
    schedule: Option<std::time::Duration>,
    respond_within: RespondWithin,
    acknowledged: bool,
    now: DateTime<Utc>,
}

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc())
}

impl Look<'_> {
    /// The newest measurement failed, or is older than twice the schedule.
    fn stale(&self) -> bool {
        if self.state.newest_status == "failed" {
            return true;
        }
        let (Some(at), Some(every)) = (parse(&self.state.newest_at), self.schedule) else {
            return false;
        };
        chrono::Duration::from_std(every * 2).is_ok_and(|twice| self.now - at > twice)
    }

    /// In amber or red longer than `respond_within` allows, and not acknowledged.
    fn overdue(&self) -> bool {
        let band = match self.state.band.as_deref() {
            Some("amber") => Band::Amber,
            Some("red") => Band::Red,
            _ => return false,
        };
        let (Some(allowed), Some(since)) = (
            self.respond_within.for_band(band),
            self.state.band_since.as_deref().and_then(parse),
        ) else {
            return false;
        };
        !self.acknowledged && chrono::Duration::from_std(allowed).is_ok_and(|allowed| self.now - since > allowed)
    }
}

/// The longest note and name an acknowledgement keeps (a note is a line, not a report).
pub const MAX_NOTE: usize = 500;
pub const MAX_BY: usize = 80;

/// Why an acknowledgement was not recorded.
#[derive(Debug)]
pub enum AckRefused {
    /// What was asked is wrong (an empty or multi-line note, an unknown KRI): the message says
    /// which field (`field`) and how to fix it.
    Input {
        field: &'static str,
        message: String,
    },
    /// The KRI is not in a band to acknowledge (green, or no value yet).
    State(String),
    Store(StoreError),
}

impl std::fmt::Display for AckRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AckRefused::Input { field, message } => write!(f, "{field} {message}"),
            AckRefused::State(m) => f.write_str(m),
            AckRefused::Store(e) => write!(f, "{e}"),
        }
    }
}

/// What an acknowledgement says: `note`, and optionally who and for how long.
pub struct AckRequest<'a> {
    pub tenant: &'a str,
    pub slug: &'a str,
    pub note: &'a str,
    pub by: Option<&'a str>,
    pub until: Option<std::time::Duration>,
    /// How the fields are called where they came from (`--note`, `note`).
    pub names: [&'static str; 3],
}

/// One line of people's text, bounded; `field` names it in the error.
fn checked(field: &'static str, text: &str, max: usize) -> Result<String, AckRefused> {
    match kri_core::text::one_line(text, max) {
        Ok(t) if t.is_empty() => Err(AckRefused::Input {
            field,
            message: "is empty: say why in a few words".into(),
        }),
        Ok(t) => Ok(t),
        Err(message) => Err(AckRefused::Input { field, message }),
    }
}

/// Acknowledge the amber or red band `req.slug` of `req.tenant` is in now (the CLI's `kri ack`
/// and the API's `POST /api/v1/ack`).
pub async fn acknowledge(store: &Store, req: AckRequest<'_>, now: DateTime<Utc>) -> Result<Ack, AckRefused> {
    let [note_name, by_name, until_name] = req.names;
    let Some((_, kri)) = kri_core::registry::find_kri(req.slug) else {
        return Err(AckRefused::Input {
            field: "slug",
            message: format!(
                "`{}` is not a KRI: `kri kris` (GET /api/v1/kris) lists them",
                kri_core::text::visible(req.slug)
            ),
        });
    };
    let note = checked(note_name, req.note, MAX_NOTE)?;
    let by = req.by.map(|b| checked(by_name, b, MAX_BY)).transpose()?;
    let until = match req.until {
        Some(d) => Some(
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .ok_or(AckRefused::Input {
                    field: until_name,
                    message: "is too far away".into(),
                })?,
        ),
        None => None,
    };
    let store = store.scoped(Some(req.tenant));
    let band = store
        .kri_states()
        .await
        .map_err(AckRefused::Store)?
        .into_iter()
        .find(|s| s.slug == kri.slug())
        .and_then(|s| s.band);
    let band = match band.as_deref() {
        Some(b @ ("amber" | "red")) => b.to_owned(),
        Some(other) => {
            return Err(AckRefused::State(format!(
                "{} is {other} now: only an amber or red band is acknowledged",
                kri.slug()
            )));
        }
        None => {
            return Err(AckRefused::State(format!(
                "{} has no value yet for tenant {}: a run measures it",
                kri.slug(),
                req.tenant
            )));
        }
    };
    let ack = Ack {
        tenant: req.tenant.to_owned(),
        slug: kri.slug().to_owned(),
        band,
        by,
        note,
        at: kri_core::store::fmt_time(&now),
        until: until.as_ref().map(kri_core::store::fmt_time),
        cleared_at: None,
    };
    store.acknowledge(&ack).await.map_err(AckRefused::Store)?;
    Ok(ack)
}

/// Each KRI's newest value (the handle's tenant's, or all) with where it stands at `now`: the
/// run output's, the dashboard's and the report's "now".
pub async fn newest(store: &Store, tenants: &[Tenant], now: DateTime<Utc>) -> Result<Vec<ValueRow>, StoreError> {
    let mut rows = store.latest_values().await?;
    Standing::read(store, now).await?.annotate(&mut rows, tenants);
    Ok(rows)
}

/// How far back [`perpetual_bands`] looks.
pub const PERPETUAL_WINDOW_DAYS: i64 = 90;

/// Per selected KRI of `tenant`, the band it never left over the last 90 days, when its history
/// there spans 30 days or more: its thresholds may not discriminate. Two index ranges per KRI.
pub async fn perpetual_bands(
    store: &Store,
    tenant: &Tenant,
    now: DateTime<Utc>,
) -> Result<HashMap<String, String>, StoreError> {
    let store = store.scoped(Some(tenant.name.as_str()));
    let since = now - chrono::Duration::days(PERPETUAL_WINDOW_DAYS);
    let mut out = HashMap::new();
    for m in tenant.modules.iter().filter(|m| m.enabled) {
        for k in m.reg.kris.iter().filter(|k| m.selected.contains(&k.slug())) {
            // Each day's lowest and highest value from the daily rollups (today's as measured):
            // a day whose two lie in one band had every value there, so this says what all the
            // values would, in a few hundred rows rather than a value per hour.
            let points = kri_core::calibrate::good_points(&store.chart(k.slug(), since, now, u32::MAX).await?);
            if let Some(band) = kri_core::calibrate::perpetual(&points, k.direction(), tenant.thresholds_for(*k), now) {
                out.insert(k.slug().to_owned(), band.as_str().to_owned());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn state(status: &str, at: &str, band: Option<&str>, since: Option<&str>) -> KriState {
        KriState {
            tenant: "acme".into(),
            slug: "pp_vap_count".into(),
            newest_at: at.into(),
            newest_status: status.into(),
            band: band.map(str::to_owned),
            band_since: since.map(str::to_owned),
        }
    }

    fn now() -> DateTime<Utc> {
        parse("2026-11-23T10:20:00Z").unwrap()
    }

    #[test]
    fn stale_when_failed_or_older_than_twice_the_schedule() {
        let hourly = Some(Duration::from_secs(3600));
        fn look(s: &KriState, schedule: Option<Duration>) -> Look<'_> {
            Look {
                state: s,
                schedule,
                respond_within: RespondWithin::default(),
                acknowledged: false,
                now: now(),
            }
        }
        let fresh = state("ok", "2026-11-23T08:30:00Z", Some("green"), None);
        let old = state("ok", "2026-11-23T08:10:00Z", Some("green"), None);
        let failed = state("failed", "2026-11-23T10:00:00Z", Some("green"), None);
        assert!(!look(&fresh, hourly).stale(), "1 h 50 min: within two hours");
        assert!(look(&old, hourly).stale(), "2 h 10 min");
        assert!(look(&failed, hourly).stale());
        assert!(!look(&old, None).stale(), "no schedule known: only a failure is stale");
    }

    #[test]
    fn overdue_when_a_breach_outlasts_its_response_time_unacknowledged() {
        let within = RespondWithin {
            amber: Some(Duration::from_secs(7 * 86_400)),
            red: Some(Duration::from_secs(86_400)),
        };
        let look = |s: &'static KriState, acknowledged| Look {
            state: s,
            schedule: None,
            respond_within: within,
            acknowledged,
            now: now(),
        };
        let kept = |s: KriState| -> &'static KriState { Box::leak(Box::new(s)) };
        let red_2d = kept(state(
            "ok",
            "2026-11-23T10:00:00Z",
            Some("red"),
            Some("2026-11-21T10:00:00Z"),
        ));
        let red_1h = kept(state(
            "ok",
            "2026-11-23T10:00:00Z",
            Some("red"),
            Some("2026-11-23T09:20:00Z"),
        ));
        let amber_2d = kept(state(
            "ok",
            "2026-11-23T10:00:00Z",
            Some("amber"),
            Some("2026-11-21T10:00:00Z"),
        ));
        let green = kept(state(
            "ok",
            "2026-11-23T10:00:00Z",
            Some("green"),
            Some("2026-11-01T10:00:00Z"),
        ));
        assert!(look(red_2d, false).overdue());
        assert!(!look(red_2d, true).overdue(), "acknowledged");
        assert!(!look(red_1h, false).overdue());
        assert!(!look(amber_2d, false).overdue(), "amber has 7 days");
        assert!(!look(green, false).overdue());
        let none = Look {
            respond_within: RespondWithin::default(),
            ..look(red_2d, false)
        };
        assert!(!none.overdue(), "no response time set");
    }
}
