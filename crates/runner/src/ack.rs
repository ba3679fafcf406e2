//! `kri ack`: acknowledge a KRI's amber or red band (who, why, until when), or clear it.

use std::sync::Arc;
use std::time::Duration;

use kri_core::Clock;
use kri_core::store::Store;
use serde_json::json;

use crate::Output;
use crate::config::Loaded;
use crate::output::print_json;
use kri_agent::Failure;

/// What `kri ack` was asked.
pub struct Request {
    pub slug: String,
    pub note: Option<String>,
    pub until: Option<Duration>,
    pub by: Option<String>,
    pub clear: bool,
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
    let by = req.by.or_else(|| std::env::var("USER").ok());
    let ask = kri_agent::practice::AckRequest {
        tenant: &tenant.name,
        slug,
        note: req.note.as_deref().unwrap_or_default(),
        by: by.as_deref(),
        until: req.until,
        names: ["--note", "--by", "--until"],
    };
    let ack = match kri_agent::practice::acknowledge(&store, ask, now).await {
        Ok(ack) => ack,
        Err(e @ kri_agent::practice::AckRefused::Input { .. }) => return Err(Failure::config(e.to_string())),
        Err(e) => return Err(Failure::runtime(e.to_string())),
    };
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
