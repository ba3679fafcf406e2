//! Running one connector once: collect, settle every KRI (license tolerance, bands), count
//! skipped rows and API calls. The runner and the connector tests share this.

use std::collections::HashMap;
use std::time::Duration;

use tracing::Instrument;

use crate::connector::{Connector, RunContext};
use crate::error::KriError;
use crate::kri::{KriStatus, Thresholds};
use crate::license::settle;
use crate::registry::Registration;
use crate::report::{ConnectorReport, ConnectorStatus};

/// Run `connector` for the `selected` slugs and build its part of the run report.
///
/// KRIs the connector offers but the config did not select are counted in `rows_skipped` and
/// not written. `thresholds` holds the configured overrides; others use the KRI's defaults.
/// A run that takes longer than `run_timeout` is stopped: its KRIs are recorded as failed (the
/// last good values stay), while what it already stored (windows read, cursors) is kept.
pub async fn run_connector(
    reg: &Registration,
    connector: &dyn Connector,
    ctx: &RunContext,
    selected: &[&'static str],
    thresholds: &HashMap<String, Thresholds>,
    run_timeout: Duration,
) -> ConnectorReport {
    let started_at = ctx.clock.now();
    let calls_before = ctx.calls.get();
    let span = tracing::info_span!("connector", module = reg.module);
    let collect = connector.collect(ctx, selected).instrument(span);
    let outcome = tokio::select! {
        r = tokio::time::timeout(run_timeout, collect) => r.ok(),
        () = ctx.cancel.cancelled() => {
            let message = format!(
                "the {} run was cancelled after {} API calls: kri was stopping and the run did not finish \
                 within the grace period; what it read so far is kept and the next run goes on from there",
                reg.module,
                ctx.calls.get() - calls_before,
            );
            tracing::error!(module = reg.module, "{message}");
            Some(selected.iter().map(|s| (*s, Err(KriError::Other(message.clone())))).collect())
        }
    };
    let mut results = match outcome {
        Some(results) => results,
        None => {
            let message = format!(
                "the {} run was stopped after {} (its run_timeout) and {} API calls; what it read so far is kept \
                 and the next run goes on from there; if the API is only slow, raise [connectors.{}] run_timeout",
                reg.module,
                humantime::format_duration(run_timeout),
                ctx.calls.get() - calls_before,
                reg.module
            );
            tracing::error!(module = reg.module, "{message}");
            selected
                .iter()
                .map(|s| (*s, Err(KriError::Other(message.clone()))))
                .collect()
        }
    };

    let mut kris = Vec::new();
    let mut rows_skipped = 0;
    for kri in reg.kris {
        let slug = kri.slug();
        if !selected.contains(&slug) {
            rows_skipped += 1;
            continue;
        }
        let result = match results.iter().position(|(s, _)| *s == slug) {
            Some(i) => results.swap_remove(i).1,
            None => Err(KriError::Other(format!("{} returned no value for {slug}", reg.id))),
        };
        let t = thresholds
            .get(slug)
            .copied()
            .unwrap_or_else(|| kri.default_thresholds());
        kris.push(settle(reg.module, *kri, result, t));
    }

    let failed: Vec<&str> = kris
        .iter()
        .filter(|k| k.status == KriStatus::Failed)
        .filter_map(|k| k.message.as_deref())
        .collect();
    let status = if failed.is_empty() {
        ConnectorStatus::Ok
    } else if failed.len() == kris.len() {
        ConnectorStatus::Failed
    } else {
        ConnectorStatus::Partial
    };
    let error = (!failed.is_empty()).then(|| {
        let mut unique: Vec<&str> = Vec::new();
        for m in failed {
            if !unique.contains(&m) {
                unique.push(m);
            }
        }
        unique.join("; ")
    });
    ConnectorReport {
        tenant: ctx.tenant.clone(),
        connector: reg.id.to_owned(),
        module: reg.module.to_owned(),
        status,
        rows_written: kris.iter().filter(|k| k.value.is_some()).count() as u64,
        rows_skipped,
        api_calls: ctx.calls.get() - calls_before,
        error,
        kris,
        started_at,
        finished_at: ctx.clock.now(),
    }
}
