//! The agent's run orchestration against the sandbox API, without the command line: a run
//! writes every enabled connector's values in one transaction, a connector whose lease another
//! holder has is reported as not run (and no other connector waits for it), and the plan and
//! the probes answer from the same settings.

use std::sync::Arc;
use std::time::Duration;

use kri_agent::{RunHow, exit_code, plan, probe, run_once};
use kri_config::{Need, Sources, load};
use kri_core::clock::ManualClock;
use kri_core::report::ConnectorStatus;
use kri_core::{Clock, KriStatus, Lease, Store};
use kri_sandbox::{Sandbox, Scenario};
// The connectors, linked as the binary links them.
use kri_connector_clear as _;
use kri_connector_ctr as _;
use kri_connector_efd as _;
use kri_connector_tap as _;

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-11-23T10:20:00Z")
        .expect("time")
        .to_utc()
}

async fn setup() -> (Sandbox, kri_config::Loaded, Store, Arc<dyn Clock>) {
    let sandbox = Sandbox::start(Scenario {
        now: Some(now()),
        ..Scenario::default()
    })
    .await
    .expect("sandbox");
    let loaded = load(&Sources::from_toml(&sandbox.demo_config()), Need::Credentials).expect("config");
    let store = Store::in_memory().expect("store");
    (sandbox, loaded, store, Arc::new(ManualClock::new(now())))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_writes_every_enabled_connectors_values_in_one_go() {
    let (_sandbox, loaded, store, clock) = setup().await;
    let how = RunHow::once(Duration::ZERO, "agent test");
    let report = run_once(&loaded, &[], &store, clock, false, &how).await.expect("a run");
    assert_eq!(exit_code(&report), 0, "{report:#?}");
    let modules: Vec<&str> = report.connectors.iter().map(|c| c.module.as_str()).collect();
    for m in ["tap", "efd", "clear", "ctr"] {
        assert!(modules.contains(&m), "{m} in {modules:?}");
    }
    let vap = store.last_good("pp_vap_count").await.unwrap().expect("stored");
    assert_eq!((vap.value, vap.run_id.as_str()), (Some(12.0), report.run_id.as_str()));
    assert_eq!(store.history(10, None).await.unwrap().len(), report.connectors.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_whose_lease_is_held_is_not_run_and_the_others_are() {
    let (_sandbox, loaded, store, clock) = setup().await;
    let held = Lease::acquire(&store, "tap", "another kri", clock.clone(), Duration::ZERO)
        .await
        .expect("the lease");
    let how = RunHow::once(Duration::ZERO, "agent test");
    let report = run_once(&loaded, &[], &store, clock.clone(), false, &how)
        .await
        .expect("a run");
    let tap = report.connectors.iter().find(|c| c.module == "tap").expect("tap");
    assert_eq!(tap.status, ConnectorStatus::Failed);
    assert!(
        tap.error.as_deref().unwrap_or_default().starts_with("not run"),
        "{tap:?}"
    );
    assert!(
        report
            .connectors
            .iter()
            .filter(|c| c.module != "tap")
            .all(|c| c.status == ConnectorStatus::Ok)
    );
    assert_eq!(exit_code(&report), 1);
    held.release().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_and_the_probes_answer_from_the_same_settings() {
    let (_sandbox, loaded, store, clock) = setup().await;
    let rows = plan(&loaded, &["tap".into()], &store, clock.clone())
        .await
        .expect("a plan");
    let siem = rows.iter().find(|r| r.pool == "siem").expect("the SIEM pool");
    assert_eq!(siem.calls, 168, "a first run reads every hour of the week: {siem:?}");
    let tenant = &loaded.tenants[0];
    let m = tenant.modules.iter().find(|m| m.reg.module == "tap").expect("tap");
    let row = probe(&tenant.name, m, m.connector.as_deref().expect("built"), &store, clock).await;
    assert_eq!((row.status, row.api_calls), (KriStatus::Ok, 1), "{row:?}");
    assert!(row.message.contains("12"), "the VAP count: {row:?}");
}
