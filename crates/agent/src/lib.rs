//! The agent: what runs the connectors. One run of the enabled connectors (each under its lease
//! and `run_timeout`, written in one transaction with the slot it makes), their probes and
//! plans, the scheduler that makes each (tenant, connector) slot's run once per store, and the
//! events it says while it works. `kri run`, `kri daemon` and `kri serve` all go through it; it
//! knows the configuration (`kri-config`) and the connectors through the registry, nothing of
//! the command line or HTTP.

pub mod deliver;
pub mod events;
pub mod practice;
mod run;
pub mod schedule;
pub mod scheduler;

pub use deliver::{Delivered, SinkStatus, deliver, deliver_now, retry_dead, sink_status};
pub use events::{Events, Lines};
pub use run::{
    PlanRow, ProbeRow, RunHow, api_calls, check_module, exit_code, kris_json, open_store, plan, probe, run_once,
    store_failure,
};

/// A command that did not succeed: the message to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// Usage or config error: exit 2.
    pub fn config(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
    /// Something failed at run time: exit 1.
    pub fn runtime(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }
}

/// A config that cannot be used is a usage error: exit 2.
impl From<kri_config::LoadError> for Failure {
    fn from(e: kri_config::LoadError) -> Self {
        Failure::config(e.message)
    }
}
