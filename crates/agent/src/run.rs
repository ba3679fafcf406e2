//! One run of the enabled connectors, their probes and their plan: the orchestration every
//! command and the scheduler go through. Each connector runs under its lease and `run_timeout`,
//! all at the same time; the run is written in one transaction with the slot it makes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kri_config::{Loaded, Module, Tenant};
use kri_core::license::settle_probe;
use kri_core::report::{ConnectorReport, ConnectorStatus, RunReport};
use kri_core::run::run_connector;
use kri_core::{Clock, KriStatus, Lease, RunContext, Store, Thresholds};
use serde::Serialize;
use serde_json::json;

use crate::Failure;

/// `1 API call`, `27 API calls`.
pub fn api_calls(n: u64) -> String {
    format!("{n} API call{}", if n == 1 { "" } else { "s" })
}

/// A tenant's connectors and KRIs, as `kri kris --output json` and `GET /api/v1/kris` answer.
/// `perpetual`: per slug, the band a KRI never left in the last 90 days (see
/// [`crate::practice::perpetual_bands`]).
pub fn kris_json(tenant: &Tenant, perpetual: &HashMap<String, String>) -> serde_json::Value {
    let connectors: Vec<_> = tenant
        .modules
        .iter()
        .map(|m| {
            let kris: Vec<_> = m
                .reg
                .kris
                .iter()
                .map(|k| {
                    let t = tenant.thresholds_for(*k);
                    json!({
                        "slug": k.slug(), "title": tenant.title_for(*k), "meaning": k.meaning(),
                        "unit": k.unit(), "direction": k.direction(),
                        "perpetual": perpetual.get(k.slug()),
                        "amber": t.amber, "red": t.red, "how": k.how(),
                        "licensed_module": k.licensed_module(),
                        "selected": m.enabled && m.selected.contains(&k.slug()),
                    })
                })
                .collect();
            json!({"connector": m.reg.id, "module": m.reg.module, "enabled": m.enabled,
                   "schedule": m.schedule_text, "description": m.reg.description, "kris": kris})
        })
        .collect();
    json!({ "tenant": tenant.name, "connectors": connectors })
}

/// One line of `kri test`.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRow {
    pub tenant: String,
    pub connector: &'static str,
    pub module: &'static str,
    pub status: KriStatus,
    pub message: String,
    pub api_calls: u64,
}

/// One line of `kri run --plan`.
#[derive(Debug, Serialize)]
pub struct PlanRow {
    pub tenant: String,
    pub module: &'static str,
    pub connector: &'static str,
    pub pool: &'static str,
    pub calls: u32,
    pub used_24h: Option<u32>,
    pub limit: Option<u32>,
    /// Budget left after the planned calls (negative: the run would be throttled).
    pub remaining_after: Option<i64>,
    pub detail: Vec<String>,
}

pub fn check_module(_loaded: &Loaded, module: &str) -> Result<(), Failure> {
    let known: Vec<&str> = kri_core::registry::registrations().iter().map(|r| r.module).collect();
    if known.contains(&module) {
        return Ok(());
    }
    Err(Failure::config(format!(
        "unknown module `{module}`; the modules are: {}",
        known.join(", ")
    )))
}

/// The configured store: `[store] url` (PostgreSQL) or `[store] path` (SQLite).
pub async fn open_store(loaded: &Loaded) -> Result<Store, Failure> {
    let store = match &loaded.store_url {
        Some(url) => Store::connect(url)
            .await
            .map_err(|e| Failure::runtime(format!("{e}; check [store] url")))?,
        None => Store::open(&loaded.store_path).map_err(|e| store_failure(&loaded.store_path, e))?,
    };
    Ok(store.with_value_events(loaded.sinks.iter().any(|s| s.wants_values())))
}

/// A store that is not one is a config error (exit 2): `[store] path` points at the wrong file.
pub fn store_failure(path: &std::path::Path, e: kri_core::store::StoreError) -> Failure {
    if e.is_not_a_database() {
        return Failure::config(format!(
            "{e}: `{}` is not a kri store (not an SQLite database); point [store] path at a new or existing kri store",
            path.display()
        ));
    }
    Failure::runtime(e.to_string())
}

pub fn exit_code(report: &RunReport) -> u8 {
    u8::from(report.connectors.iter().any(|c| c.status != ConnectorStatus::Ok))
}

/// Who runs (for the lease holder's description) and how long to wait for a connector that
/// another process is running (`None`: up to the connector's `run_timeout`).
pub struct RunHow {
    pub wait: Option<Duration>,
    pub what: &'static str,
    /// The run's id, when the caller handed it out already (a service's Run now).
    pub run_id: Option<String>,
    /// Stops the run now (a service after its grace period): recorded as failed.
    pub cancel: kri_core::CancellationToken,
    /// Only this tenant (a service runs each tenant's connectors on their own slots).
    pub tenant: Option<String>,
    /// The caller holds the connector's lease already (a service's slot run).
    pub leased: bool,
    /// The slot this run makes, written with the run in one transaction: (lease name, slot).
    pub mark: Option<(String, String)>,
}

impl RunHow {
    /// A one-shot command's run: waits `wait` for a connector another process runs.
    pub fn once(wait: Duration, what: &'static str) -> Self {
        Self {
            wait: Some(wait),
            what,
            run_id: None,
            cancel: kri_core::CancellationToken::new(),
            tenant: None,
            leased: false,
            mark: None,
        }
    }
}

/// Run the enabled connectors (or the `only` ones) once, all at the same time (one hung API
/// delays no other), and write the run in one transaction. Each connector runs under its lease:
/// one held by another process is waited for up to `how.wait`, then reported as failed, naming
/// the holder, without being run.
pub async fn run_once(
    loaded: &Loaded,
    only: &[String],
    store: &Store,
    clock: Arc<dyn Clock>,
    interactive: bool,
    how: &RunHow,
) -> Result<RunReport, Failure> {
    for m in only {
        check_module(loaded, m)?;
        let modules = || {
            loaded
                .tenants
                .iter()
                .filter_map(|t| t.modules.iter().find(|x| x.reg.module == m))
        };
        if modules().all(|x| !x.enabled) {
            let origin = modules().find_map(|x| x.enabled_from.clone());
            return Err(Failure::config(match origin {
                Some(from) => {
                    format!("--only {m}: the `{m}` connector is disabled by {from}; set it to true there to run it")
                }
                None => format!(
                    "--only {m}: the `{m}` connector is off by default; set [connectors.{m}] enabled = true \
                     (or KRI_CONNECTORS__{}__ENABLED=true) to run it",
                    m.to_ascii_uppercase()
                ),
            }));
        }
    }
    // Progress bars for one tenant on a terminal only.
    let interactive = interactive && loaded.tenants.len() == 1;
    let started_at = clock.now();
    // Plain loops, not iterator closures: the run is a task of a service, so its future must
    // be `Send` for every lifetime, which closures over borrowed tenants do not prove.
    let mut jobs = Vec::new();
    for t in &loaded.tenants {
        if how.tenant.as_ref().is_some_and(|name| *name != t.name) {
            continue;
        }
        for m in &t.modules {
            let Some(c) = m.connector.as_deref() else { continue };
            if !only.is_empty() && !only.iter().any(|o| o == m.reg.module) {
                continue;
            }
            let job = Job {
                leased: how.leased,
                tenant: &t.name,
                module: m,
                connector: c,
                wait: how.wait.unwrap_or(m.run_timeout),
                what: how.what,
                cancel: how.cancel.clone(),
            };
            jobs.push(Box::pin(job.run(store, clock.clone(), interactive, &t.thresholds)));
        }
    }
    // Tenants run side by side, a bounded number at a time; each tenant's connectors at once.
    let mut connectors: Vec<ConnectorReport> = futures_util::stream::iter(jobs)
        .buffered(loaded.serve.runs_at_once)
        .collect()
        .await;
    // Each KRI as its tenant practises it: title, owner, action (stored and sent with events).
    for c in &mut connectors {
        let Some(t) = loaded.tenants.iter().find(|t| t.name == c.tenant) else {
            continue;
        };
        for k in &mut c.kris {
            let p = t.practice_for(k.slug);
            if let Some(title) = p.title {
                k.title = title;
            }
            k.owner = p.owner;
            k.action = p.action;
        }
    }
    if connectors.is_empty() {
        let modules: Vec<&str> = kri_core::registry::registrations().iter().map(|r| r.module).collect();
        return Err(Failure::config(format!(
            "no connector is enabled: set enabled = true in the [connectors.KEY] table of one of: {}",
            modules.join(", ")
        )));
    }
    let report = RunReport {
        run_id: how.run_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        started_at,
        finished_at: clock.now(),
        connectors,
    };
    let marks: Vec<(String, String)> = how.mark.iter().cloned().collect();
    store.write_run_marked(&report, &marks).await.map_err(|e| {
        Failure::runtime(format!(
            "{e}: the run's values were NOT stored; the last good values are unchanged"
        ))
    })?;
    // At most once an hour per store, whichever process gets there first, in short batches.
    let now = clock.now();
    let horizon = chrono::Duration::days(i64::from(loaded.keep_days));
    if let Some(before) = now.checked_sub_signed(horizon) {
        match store.prune_if_due(now, before).await {
            Ok(None) => {}
            Ok(Some(p)) if p.runs + p.values == 0 => {}
            Ok(Some(p)) => tracing::info!(
                runs = p.runs,
                values = p.values,
                batches = p.batches,
                longest_batch_ms = p.longest_batch.as_millis() as u64,
                keep_days = loaded.keep_days,
                "pruned old runs and values"
            ),
            Err(e) => tracing::warn!("could not prune old runs and values ([store] keep_days): {e}"),
        }
    }
    Ok(report)
}

/// One connector's part of a run.
struct Job<'a> {
    /// The caller holds the lease (it is not taken again).
    leased: bool,
    tenant: &'a str,
    module: &'a Module,
    connector: &'a dyn kri_core::Connector,
    wait: Duration,
    what: &'static str,
    cancel: kri_core::CancellationToken,
}

impl Job<'_> {
    /// Run under the connector's lease; a lease held elsewhere is a failed, not-run connector.
    async fn run(
        self,
        store: &Store,
        clock: Arc<dyn Clock>,
        interactive: bool,
        thresholds: &HashMap<String, Thresholds>,
    ) -> ConnectorReport {
        let m = self.module;
        let started_at = clock.now();
        let name = kri_core::store::namespace(self.tenant, m.reg.module);
        let acquired = if self.leased {
            Ok(None)
        } else {
            let acquire = Lease::acquire(store, &name, self.what, clock.clone(), self.wait);
            tokio::select! {
                r = acquire => r.map(Some).map_err(|e| e.to_string()),
                () = self.cancel.cancelled() => Err("kri was stopping before another process let go of the connector".to_owned()),
            }
        };
        let lease = match acquired {
            Ok(lease) => lease,
            Err(e) => {
                tracing::error!(tenant = self.tenant, module = m.reg.module, "{e}");
                return ConnectorReport {
                    tenant: self.tenant.to_owned(),
                    connector: m.reg.id.to_owned(),
                    module: m.reg.module.to_owned(),
                    status: ConnectorStatus::Failed,
                    rows_written: 0,
                    rows_skipped: 0,
                    api_calls: 0,
                    error: Some(format!("not run: {e}")),
                    kris: Vec::new(),
                    started_at,
                    finished_at: clock.now(),
                };
            }
        };
        let ctx = RunContext::for_tenant(clock, store, self.tenant, m.reg.module, interactive).with_cancel(self.cancel);
        let report = run_connector(m.reg, self.connector, &ctx, &m.selected, thresholds, m.run_timeout).await;
        if let Some(lease) = lease {
            lease.release().await;
        }
        report
    }
}

/// `kri run --plan`: what a run would call now, per pool, against the rolling-24 h budgets.
pub async fn plan(
    loaded: &Loaded,
    only: &[String],
    store: &Store,
    clock: Arc<dyn Clock>,
) -> Result<Vec<PlanRow>, Failure> {
    for m in only {
        check_module(loaded, m)?;
    }
    let mut rows = Vec::new();
    for (t, m) in loaded
        .tenants
        .iter()
        .flat_map(|t| t.modules.iter().map(move |m| (t, m)))
    {
        let Some(connector) = &m.connector else { continue };
        if !only.is_empty() && !only.iter().any(|o| o == m.reg.module) {
            continue;
        }
        let ctx = RunContext::for_tenant(clock.clone(), store, &t.name, m.reg.module, false);
        let planned = connector
            .plan(&ctx, &m.selected)
            .await
            .map_err(|e| Failure::runtime(format!("{}: {e}", m.reg.module)))?;
        for p in planned {
            // Every request sent in the last 24 h, retries and redirect hops included.
            let used = Some(
                ctx.budget
                    .used_24h(&kri_core::Pool::unlimited(p.pool))
                    .await
                    .map_err(|e| Failure::runtime(e.to_string()))?,
            );
            rows.push(PlanRow {
                tenant: t.name.clone(),
                module: m.reg.module,
                connector: m.reg.id,
                pool: p.pool,
                calls: p.calls,
                used_24h: used,
                limit: p.limit,
                remaining_after: p
                    .limit
                    .zip(used)
                    .map(|(l, u)| i64::from(l) - i64::from(u) - i64::from(p.calls)),
                detail: p.detail,
            });
        }
    }
    Ok(rows)
}

/// One connector's connectivity probe, bounded by its `run_timeout`.
pub async fn probe(
    tenant: &str,
    m: &Module,
    connector: &dyn kri_core::Connector,
    store: &Store,
    clock: Arc<dyn Clock>,
) -> ProbeRow {
    let ctx = RunContext::for_tenant(clock, store, tenant, m.reg.module, false);
    let probe = match tokio::time::timeout(m.run_timeout, connector.probe(&ctx)).await {
        Ok(result) => result,
        Err(_) => Err(kri_core::KriError::Other(format!(
            "no answer within {} (the connector's run_timeout)",
            humantime::format_duration(m.run_timeout)
        ))),
    };
    let outcome = settle_probe(m.reg.kris, probe);
    ProbeRow {
        tenant: tenant.to_owned(),
        connector: m.reg.id,
        module: m.reg.module,
        status: outcome.status,
        message: outcome.message,
        api_calls: ctx.calls.get(),
    }
}
