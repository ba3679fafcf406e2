//! The scheduler of `kri serve` and `kri daemon`: each enabled connector on its own slots (see
//! [`schedule`](super::schedule)), never two runs of one connector at once, different
//! connectors at the same time; Run now and Test on request; on stop, a grace period for the
//! running runs, then they are cancelled (recorded as failed, last good values untouched).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kri_core::lease::LeaseError;
use kri_core::report::ConnectorStatus;
use kri_core::store::fmt_time;
use kri_core::{CancellationToken, Clock, Lease, Store};
use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::events::Events;
use crate::run::{ProbeRow, RunHow, exit_code, probe, run_once};
use crate::schedule::{after_run, jitter, next_slot, prev_slot};
use kri_config::Loaded;

/// How long cancelled runs get to record themselves as failed before the process goes.
const CANCEL_BOUND: Duration = Duration::from_secs(15);
/// Tests kept for `GET /api/v1/test/{id}`.
const KEPT_TESTS: usize = 50;

/// One connector of one tenant, and its place in the schedule.
struct Slot {
    tenant: String,
    module: &'static str,
    schedule: String,
    period: Duration,
    offset: Duration,
    jitter: Duration,
    /// When to look next (a run, or a look again at a run another worker holds).
    next: DateTime<Utc>,
    /// The slot the next run is for: its identity across every worker on the store. A run is
    /// made once per slot, whichever worker makes it (see [`Scheduler::run_one`]).
    slot: DateTime<Utc>,
    /// The id of the run in progress.
    running: Option<String>,
    /// A Run now waiting to start, with the id it was promised.
    requested: Option<String>,
    failures: u32,
    completed: bool,
    last: Option<LastRun>,
}

pub use crate::events::LastRun;

/// What the API, the page and `/metrics` show of a connector's schedule.
#[derive(Debug, Clone, Serialize)]
pub struct SlotView {
    pub tenant: String,
    pub module: String,
    pub schedule: String,
    /// When the next run starts (RFC 3339), or null while one runs.
    pub next_run: Option<String>,
    #[serde(skip)]
    pub next_at: Option<DateTime<Utc>>,
    /// The id of the run in progress, if any.
    pub running: Option<String>,
    /// Failed runs in a row (the retry back-off grows with it).
    pub failures: u32,
    pub completed_since_start: bool,
    pub last_run: Option<LastRun>,
}

/// A Test (connectivity probe) asked for through the API.
#[derive(Debug, Clone, Serialize)]
pub struct TestView {
    pub test_id: String,
    pub tenant: String,
    pub module: String,
    /// `running` or `done`.
    pub state: &'static str,
    pub probe: Option<ProbeRow>,
}

/// Why a Run now or a Test was not started.
#[derive(Debug)]
pub enum Refusal {
    /// Unknown or disabled module: the message says which modules can be run.
    Module(String),
    /// The process is stopping.
    Stopping,
}

pub struct Scheduler {
    loaded: Arc<Loaded>,
    store: Store,
    clock: Arc<dyn Clock>,
    events: Events,
    slots: Mutex<Vec<Slot>>,
    tests: Mutex<VecDeque<TestView>>,
    wake: Notify,
    /// Fires at the first signal: no new run starts.
    pub stop: CancellationToken,
    /// Fires when the grace period is over: running runs stop.
    cancel: CancellationToken,
    /// How often the loop looks at the clock while waiting (the clock may be moved by a test).
    tick: Duration,
    /// Bounds the runs in flight (`[serve] runs_at_once`): many tenants' first runs start
    /// together, and neither the API nor the store's pool gains from all of them at once.
    permits: Arc<tokio::sync::Semaphore>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Scheduler {
    /// Every enabled connector, its first run due at once.
    pub fn new(loaded: Arc<Loaded>, store: Store, clock: Arc<dyn Clock>, events: Events, tick: Duration) -> Arc<Self> {
        let now = clock.now();
        let permits = Arc::new(tokio::sync::Semaphore::new(loaded.serve.runs_at_once));
        let slots = loaded
            .tenants
            .iter()
            .flat_map(|t| t.modules.iter().map(move |m| (t, m)))
            .filter(|(_, m)| m.connector.is_some())
            .map(|(t, m)| Slot {
                tenant: t.name.clone(),
                module: m.reg.module,
                schedule: m.schedule_text.clone(),
                period: m.schedule,
                offset: m.at.unwrap_or_default(),
                jitter: jitter(&kri_core::store::namespace(&t.name, m.reg.module), m.schedule),
                next: now,
                // At start: the current period's slot, run now unless a worker ran it already.
                slot: prev_slot(
                    now,
                    m.schedule,
                    m.at.unwrap_or_default(),
                    jitter(&kri_core::store::namespace(&t.name, m.reg.module), m.schedule),
                ),
                running: None,
                requested: None,
                failures: 0,
                completed: false,
                last: None,
            })
            .collect();
        Arc::new(Self {
            loaded,
            store,
            clock,
            events,
            slots: Mutex::new(slots),
            tests: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            stop: CancellationToken::new(),
            cancel: CancellationToken::new(),
            tick,
            permits,
        })
    }

    /// The (tenant, module) pairs scheduled, with their first and regular next runs (for the
    /// start line).
    pub fn plan(&self) -> Vec<(String, String, String, DateTime<Utc>)> {
        let now = self.clock.now();
        lock(&self.slots)
            .iter()
            .map(|s| {
                (
                    s.tenant.clone(),
                    s.module.to_owned(),
                    s.schedule.clone(),
                    next_slot(now, s.period, s.offset, s.jitter),
                )
            })
            .collect()
    }

    pub fn slots(&self) -> Vec<SlotView> {
        lock(&self.slots)
            .iter()
            .map(|s| {
                let next = (s.running.is_none() && !self.stop.is_cancelled()).then_some(s.next);
                SlotView {
                    tenant: s.tenant.clone(),
                    module: s.module.to_owned(),
                    schedule: s.schedule.clone(),
                    next_run: next.as_ref().map(fmt_time),
                    next_at: next,
                    running: s.running.clone(),
                    failures: s.failures,
                    completed_since_start: s.completed,
                    last_run: s.last.clone(),
                }
            })
            .collect()
    }

    /// `Ok` once every scheduled connector has completed a run since start.
    pub fn ready(&self) -> Result<(), String> {
        let waiting: Vec<String> = lock(&self.slots)
            .iter()
            .filter(|s| !s.completed)
            .map(|s| label(&s.tenant, s.module))
            .collect();
        match waiting.len() {
            0 => Ok(()),
            n if n > 10 => Err(format!(
                "waiting for the first run since start of {n} connectors: {}, …",
                waiting[..10].join(", ")
            )),
            _ => Err(format!(
                "waiting for the first run since start of: {}",
                waiting.join(", ")
            )),
        }
    }

    fn refuse_module(&self, module: &str) -> Refusal {
        let mut scheduled: Vec<&str> = lock(&self.slots).iter().map(|s| s.module).collect();
        scheduled.sort_unstable();
        scheduled.dedup();
        let known = kri_core::registry::registrations().iter().any(|r| r.module == module);
        Refusal::Module(if known {
            format!(
                "the `{module}` connector is not enabled here; the enabled ones are: {}",
                scheduled.join(", ")
            )
        } else {
            format!(
                "unknown module `{module}`; the enabled ones are: {}",
                scheduled.join(", ")
            )
        })
    }

    /// Run now: the id of the run that will start (`true`), or of the run already running or
    /// already asked for (`false`): a run is never doubled.
    pub fn request_run(&self, tenant: Option<&str>, module: &str) -> Result<(String, bool), Refusal> {
        if self.stop.is_cancelled() {
            return Err(Refusal::Stopping);
        }
        let tenant = self.which_tenant(tenant, module)?;
        let mut slots = lock(&self.slots);
        let Some(slot) = slots.iter_mut().find(|s| s.module == module && s.tenant == tenant) else {
            drop(slots);
            return Err(self.refuse_module(module));
        };
        if let Some(id) = slot.running.clone().or_else(|| slot.requested.clone()) {
            return Ok((id, false));
        }
        let id = uuid::Uuid::new_v4().to_string();
        slot.requested = Some(id.clone());
        drop(slots);
        self.wake.notify_one();
        Ok((id, true))
    }

    /// Test: start a connectivity probe of `module` (or name the one already running).
    pub fn request_test(self: &Arc<Self>, tenant: Option<&str>, module: &str) -> Result<(String, bool), Refusal> {
        if self.stop.is_cancelled() {
            return Err(Refusal::Stopping);
        }
        let tenant = self.which_tenant(tenant, module)?;
        if !lock(&self.slots)
            .iter()
            .any(|s| s.module == module && s.tenant == tenant)
        {
            return Err(self.refuse_module(module));
        }
        let mut tests = lock(&self.tests);
        if let Some(t) = tests
            .iter()
            .find(|t| t.module == module && t.tenant == tenant && t.state == "running")
        {
            return Ok((t.test_id.clone(), false));
        }
        let id = uuid::Uuid::new_v4().to_string();
        tests.push_front(TestView {
            test_id: id.clone(),
            tenant: tenant.clone(),
            module: module.to_owned(),
            state: "running",
            probe: None,
        });
        tests.truncate(KEPT_TESTS);
        drop(tests);
        let me = self.clone();
        let (module, test_id) = (module.to_owned(), id.clone());
        tokio::spawn(async move {
            let Some(t) = me.loaded.tenants.iter().find(|t| t.name == tenant) else {
                return;
            };
            let Some(m) = t.modules.iter().find(|m| m.reg.module == module) else {
                return;
            };
            let Some(connector) = m.connector.as_deref() else {
                return;
            };
            let row = probe(&t.name, m, connector, &me.store, me.clock.clone()).await;
            me.events.test(&test_id, &row);
            if let Some(t) = lock(&me.tests).iter_mut().find(|t| t.test_id == test_id) {
                t.state = "done";
                t.probe = Some(row);
            }
        });
        Ok((id, true))
    }

    /// The tenant a Run now or Test is for: the one named, or the only one running `module`.
    fn which_tenant(&self, tenant: Option<&str>, module: &str) -> Result<String, Refusal> {
        let slots = lock(&self.slots);
        if let Some(t) = tenant {
            if slots.iter().any(|s| s.tenant == t) {
                return Ok(t.to_owned());
            }
            return Err(Refusal::Module(format!("no tenant `{t}` is scheduled here")));
        }
        let mut of_module = slots.iter().filter(|s| s.module == module).map(|s| s.tenant.as_str());
        match (of_module.next(), of_module.next()) {
            (Some(one), None) => Ok(one.to_owned()),
            (None, _) => {
                drop(slots);
                Err(self.refuse_module(module))
            }
            (Some(_), Some(_)) => Err(Refusal::Module(format!(
                "several tenants run the `{module}` connector: say which with tenant=NAME"
            ))),
        }
    }

    pub fn test(&self, id: &str) -> Option<TestView> {
        lock(&self.tests).iter().find(|t| t.test_id == id).cloned()
    }

    /// Schedule until `stop` fires, then give the running runs `grace`, then cancel them.
    pub async fn run(self: Arc<Self>, grace: Duration) {
        let mut tasks = JoinSet::new();
        loop {
            while let Some(done) = tasks.try_join_next() {
                if let Err(e) = done {
                    tracing::error!("a run task ended abnormally: {e}");
                }
            }
            if self.stop.is_cancelled() {
                break;
            }
            let now = self.clock.now();
            for (tenant, module, run_id, slot) in self.due(now) {
                tasks.spawn(self.clone().run_one(tenant, module, run_id, slot));
            }
            let wait = self.wait(now);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                () = self.stop.cancelled() => {}
            }
        }
        let running: Vec<String> = lock(&self.slots)
            .iter()
            .filter(|s| s.running.is_some())
            .map(|s| label(&s.tenant, s.module))
            .collect();
        self.events.stopping(&running, grace);
        if tasks.is_empty() {
            return;
        }
        let all = async {
            while let Some(done) = tasks.join_next().await {
                if let Err(e) = done {
                    tracing::error!("a run task ended abnormally: {e}");
                }
            }
        };
        if tokio::time::timeout(grace, all).await.is_ok() {
            return;
        }
        // Past the grace period: the runs stop, record themselves as failed and are written.
        self.cancel.cancel();
        let all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(CANCEL_BOUND, all).await.is_err() {
            tracing::error!("runs did not stop within {CANCEL_BOUND:?} of being cancelled; leaving them");
            tasks.abort_all();
        }
    }

    /// Mark the due connectors running and hand out their run ids.
    fn due(&self, now: DateTime<Utc>) -> Vec<(String, &'static str, String, DateTime<Utc>)> {
        let mut out = Vec::new();
        for s in lock(&self.slots).iter_mut() {
            if s.running.is_some() || (s.requested.is_none() && s.next > now) {
                continue;
            }
            // Run now is a slot of its own: the instant it starts.
            let slot = if s.requested.is_some() { now } else { s.slot };
            let id = s.requested.take().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            s.running = Some(id.clone());
            out.push((s.tenant.clone(), s.module, id, slot));
        }
        out
    }

    /// Until the next due run, at most one tick (the clock is read again then).
    fn wait(&self, now: DateTime<Utc>) -> Duration {
        lock(&self.slots)
            .iter()
            .filter(|s| s.running.is_none())
            .map(|s| (s.next - now).to_std().unwrap_or_default())
            .min()
            .unwrap_or(self.tick)
            .min(self.tick)
    }

    /// One slot's run, made once whichever worker on the store gets there first: under the
    /// (tenant, connector) lease, and only when no worker has made this slot's run yet. The run's
    /// values and the slot's mark are written in one transaction, so a worker killed mid-run
    /// leaves the slot unmarked: when its lease lapses another worker makes the run.
    async fn run_one(self: Arc<Self>, tenant: String, module: &'static str, run_id: String, slot: DateTime<Utc>) {
        // Waiting for a permit is waiting to start: the run counts as running (never doubled).
        let _permit = tokio::select! {
            p = self.permits.clone().acquire_owned() => p.ok(),
            () = self.cancel.cancelled() => None,
        };
        let name = kri_core::store::namespace(&tenant, module);
        let lease = match Lease::acquire(&self.store, &name, "kri serve", self.clock.clone(), Duration::ZERO).await {
            Ok(lease) => Some(lease),
            Err(LeaseError::Held { holder, .. }) => {
                // Another worker (or a `kri run`) runs it now: look again later, same slot.
                tracing::debug!(tenant, module, holder = %holder.holder, "held elsewhere; looking again later");
                self.look_again(&tenant, module);
                return;
            }
            Err(e) => {
                tracing::error!(tenant, module, "cannot take the lease: {e}");
                None
            }
        };
        let slot_text = fmt_time(&slot);
        if lease.is_some() {
            match self.store.slot_done(&name).await {
                Ok(Some(done)) if *done >= *slot_text => {
                    if let Some(l) = lease {
                        l.release().await;
                    }
                    self.skipped(&tenant, module, &slot_text, &done);
                    return;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(tenant, module, "cannot read the slot mark (running anyway): {e}"),
            }
        }
        self.events.run_started(&tenant, module, &run_id);
        let how = RunHow {
            wait: None,
            what: "kri serve",
            run_id: Some(run_id.clone()),
            cancel: self.cancel.clone(),
            tenant: Some(tenant.clone()),
            leased: lease.is_some(),
            mark: Some((name.clone(), slot_text)),
        };
        let started = self.clock.now();
        let only = [module.to_owned()];
        // Never a progress bar on a service's terminal.
        let run = run_once(&self.loaded, &only, &self.store, self.clock.clone(), false, &how);
        let result = match unless_panic(run).await {
            Ok(result) => result,
            Err(why) => Err(crate::Failure::runtime(format!(
                "the run stopped on an internal error ({why}); it counts as a failed run and is retried"
            ))),
        };
        if let Some(l) = lease {
            l.release().await;
        }
        let now = self.clock.now();
        let (ok, last) = match &result {
            Ok(report) => {
                let c = report.connectors.first();
                (
                    exit_code(report) == 0,
                    LastRun {
                        run_id: report.run_id.clone(),
                        status: c.map_or("failed", |c| c.status.as_str()).to_owned(),
                        started_at: fmt_time(&report.started_at),
                        finished_at: fmt_time(&report.finished_at),
                        error: c.and_then(|c| c.error.clone()),
                    },
                )
            }
            Err(f) => (
                false,
                LastRun {
                    run_id: run_id.clone(),
                    status: ConnectorStatus::Failed.as_str().to_owned(),
                    started_at: fmt_time(&started),
                    finished_at: fmt_time(&now),
                    error: Some(f.message.clone()),
                },
            ),
        };
        let Some(next) = self.with_slot(&tenant, module, |s| {
            s.running = None;
            s.completed = true;
            s.failures = if ok { 0 } else { s.failures.saturating_add(1) };
            s.next = after_run(now, s.failures, s.period, s.offset, s.jitter);
            s.slot = s.next;
            s.last = Some(last.clone());
            (s.next, s.failures)
        }) else {
            return;
        };
        match &result {
            Ok(report) => self.events.run(report, next),
            Err(_) => self.events.run_error(&tenant, module, &last, next),
        }
        self.wake.notify_one();
    }
}

/// `fut`'s output, or the message of the panic it ended with: a run that panics is a failed
/// run, and its slot is free again, instead of "running" for ever.
async fn unless_panic<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(fut).catch_unwind().await.map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

impl Scheduler {
    /// `f` on the slot of (`tenant`, `module`), under the lock.
    fn with_slot<R>(&self, tenant: &str, module: &str, f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
        lock(&self.slots)
            .iter_mut()
            .find(|s| s.module == module && s.tenant == tenant)
            .map(f)
    }

    /// The slot's run is held by another process: look again in a while (a dead holder's lease
    /// lapses after its heartbeats stop), for the same slot.
    fn look_again(&self, tenant: &str, module: &str) {
        let now = self.clock.now();
        self.with_slot(tenant, module, |s| {
            s.running = None;
            s.next = now + chrono::Duration::from_std(LOOK_AGAIN).unwrap_or_default();
        });
        self.wake.notify_one();
    }

    /// Another worker made this slot's run already: on to the next slot.
    fn skipped(&self, tenant: &str, module: &str, slot: &str, done: &str) {
        let now = self.clock.now();
        let Some(next) = self.with_slot(tenant, module, |s| {
            s.running = None;
            s.completed = true;
            s.next = next_slot(now, s.period, s.offset, s.jitter);
            s.slot = s.next;
            s.next
        }) else {
            return;
        };
        self.events.skipped(tenant, module, slot, done, next);
        self.wake.notify_one();
    }
}

/// How soon a worker looks again at a slot another process holds.
const LOOK_AGAIN: Duration = Duration::from_secs(20);

/// `tap`, or `acme/tap` for a tenant other than `default`.
pub fn label(tenant: &str, module: &str) -> String {
    kri_core::store::namespace(tenant, module)
}

/// The JSON of a schedule, for `GET /api/v1/schedule`.
pub fn schedule_json(slots: &[SlotView]) -> serde_json::Value {
    json!({ "connectors": slots })
}

#[cfg(test)]
mod tests {
    use super::unless_panic;

    #[tokio::test]
    async fn a_panicking_run_is_an_error_with_its_message() {
        assert_eq!(unless_panic(async { 7 }).await, Ok(7));
        let e = unless_panic(async {
            let v: Vec<u8> = Vec::new();
            v[3]
        })
        .await
        .unwrap_err();
        assert!(e.contains("index out of bounds"), "{e}");
        let e = unless_panic(async { std::panic::panic_any(42u8) }).await.unwrap_err();
        assert_eq!(e, "a panic without a message");
    }
}
