//! `kri ack`: acknowledge a KRI's amber or red band (who, why, until when), or clear it.

use std::sync::Arc;
use std::time::Duration;

use kri_core::Clock;
use kri_core::store::{Ack, Store};
use serde_json::json;

use crate::Output;
use crate::config::Loaded;
use crate::output::print_json;
use kri_agent::Failure;

/// The longest note and name kept (a note is a line, not a report).
const MAX_NOTE: usize = 500;
const MAX_BY: usize = 80;

/// What `kri ack` was asked.
pub struct Request {
    pub slug: String,
    pub note: Option<String>,
    pub until: Option<Duration>,
    pub by: Option<String>,
    pub clear: bool,
}

/// One line of printable text, bounded: `what` names the option in the error.
fn line(what: &str, text: &str, max: usize) -> Result<String, Failure> {
    match kri_core::text::one_line(text, max) {
        Ok(t) if t.is_empty() => Err(Failure::config(format!("{what} is empty: say why in a few words"))),
        Ok(t) => Ok(t),
        Err(m) => Err(Failure::config(format!("{what} {m}"))),
    }
}

/// Acknowledge (or clear) as asked, for the one tenant `loaded` holds.
pub async fn run(
    loaded: &Loaded,
    store: &Store,
    req: Request,
    clock: Arc<dyn Clock>,
    out: Output,
) -> Result<u8, Failure> {
    let [tenant] = loaded.tenants.as_slice() else {
        return Err(Failure::config(format!(
            "{} tenants: say whose KRI this is with --tenant NAME",
            loaded.tenants.len()
        )));
    };
    let Some((_, kri)) = kri_core::registry::find_kri(&req.slug) else {
        return Err(Failure::config(format!(
            "unknown KRI `{}`: `kri kris` lists the KRIs",
            kri_core::text::visible(&req.slug)
        )));
    };
    let slug = kri.slug();
    let store = store.scoped(Some(tenant.name.as_str()));
    let now = clock.now();
    let read = |e: kri_core::store::StoreError| Failure::runtime(e.to_string());
    if req.clear {
        let n = store.clear_ack(&tenant.name, slug, now).await.map_err(read)?;
        if out == Output::Json {
            print_json(&json!({"tenant": tenant.name, "slug": slug, "cleared": n > 0}));
        } else if n > 0 {
            outln!("{slug}: acknowledgement cleared");
        } else {
            outln!("{slug}: no acknowledgement to clear");
        }
        return Ok(0);
    }
    let note = line("--note", req.note.as_deref().unwrap_or_default(), MAX_NOTE)?;
    let by = match req.by.as_deref() {
        Some(by) => Some(line("--by", by, MAX_BY)?),
        None => std::env::var("USER").ok().and_then(|u| line("--by", &u, MAX_BY).ok()),
    };
    let band = store
        .latest_good_values()
        .await
        .map_err(read)?
        .into_iter()
        .find(|v| v.slug == slug)
        .and_then(|v| v.band);
    let band = match band.as_deref() {
        Some(b @ ("amber" | "red")) => b.to_owned(),
        Some(other) => {
            return Err(Failure::runtime(format!(
                "{slug} is {other} now: only an amber or red band is acknowledged"
            )));
        }
        None => {
            return Err(Failure::runtime(format!(
                "{slug} has no value yet{}: `kri run` measures it",
                if loaded.multi_tenant {
                    format!(" for tenant {}", tenant.name)
                } else {
                    String::new()
                }
            )));
        }
    };
    let until = match req.until {
        Some(d) => Some(
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| Failure::config("--until is too far away"))?,
        ),
        None => None,
    };
    let ack = Ack {
        tenant: tenant.name.clone(),
        slug: slug.to_owned(),
        band,
        by,
        note,
        at: kri_core::store::fmt_time(&now),
        until: until.as_ref().map(kri_core::store::fmt_time),
        cleared_at: None,
    };
    store.acknowledge(&ack).await.map_err(read)?;
    if out == Output::Json {
        print_json(&ack);
    } else {
        outln!(
            "{slug}: {} acknowledged{}{}: {}",
            ack.band,
            ack.by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default(),
            ack.until.as_deref().map(|u| format!(" until {u}")).unwrap_or_default(),
            ack.note
        );
        errln!(
            "it ends when the band changes{}; `kri ack --clear {slug}` ends it now",
            if ack.until.is_some() { " or the time is up" } else { "" }
        );
    }
    Ok(0)
}
