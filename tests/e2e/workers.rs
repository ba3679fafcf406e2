//! Several `kri daemon` workers on one PostgreSQL store share the work: each (tenant,
//! connector) slot runs once, never twice at a time, and a worker killed mid-run loses its runs
//! to the others with nothing lost or counted twice. A real PostgreSQL server (kri-testpg).

use std::time::{Duration, Instant};

use kri_sandbox::{Scenario, tenant_credentials, tenant_vap_users};
use serde_json::Value;

use crate::helper::Kri;

const TENANTS: u32 = 50;
const WORKERS: usize = 3;

#[tokio::test]
async fn three_workers_share_fifty_tenants_and_take_over_a_killed_workers_runs() {
    let pg = kri_testpg::TestPg::start().expect("a PostgreSQL server for the test");
    let k = Kri::new(Scenario {
        tenants: TENANTS,
        // Runs take a while, so a worker is killed with runs in flight.
        latency: Duration::from_millis(15),
        ..Scenario::default()
    })
    .await;
    let cfg = k.dir.path().join("kri.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"{}\"\n\n[proofpoint]\nbase_url = \"{}\"\n\n[tenants]\ndir = \"tenants.d\"\n\n\
             [connectors.tap]\nschedule = \"hourly\"\n",
            pg.url,
            k.sandbox.base_url()
        ),
    )
    .expect("config");
    let dir = k.dir.path().join("tenants.d");
    std::fs::create_dir_all(&dir).expect("tenants.d");
    for i in 1..=TENANTS {
        let (p, s) = tenant_credentials(i);
        std::fs::write(
            dir.join(format!("t{i:02}.toml")),
            format!("[proofpoint]\ncredentials = \"{p}:{s}\"\n"),
        )
        .expect("tenant file");
    }

    // The worker to kill starts first, so it holds runs of its own; the others start with it.
    let mut victim = k.start(&cfg, &["daemon"], &[]).await;
    let mut workers = Vec::new();
    for _ in 1..WORKERS {
        workers.push(k.start(&cfg, &["daemon"], &[]).await);
    }
    // Killed as soon as it has finished one run: it has others in flight.
    victim.event("run").await;
    victim.signal(libc::SIGKILL);
    let (code, _) = victim.exit(Duration::from_secs(10)).await;
    assert_eq!(code, -1, "killed by a signal");
    let victims_done: Vec<String> = victim
        .seen
        .iter()
        .filter(|e| e["event"] == "run")
        .map(|e| format!("{}/{}", e["connectors"][0]["tenant"], e["connectors"][0]["module"]))
        .collect();

    // The survivors look again at the slots they found held; the killed worker's leases are
    // free (its process is gone), so they make its runs.
    k.move_to(&workers[0], k.now() + chrono::Duration::seconds(25));
    let want = TENANTS as usize * 3;
    let deadline = Instant::now() + Duration::from_secs(240);
    let runs = loop {
        let runs = json_of(&k, &cfg, &["history", "--limit", "10000"]).await["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if runs.len() >= want {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {want} runs stored; worker 1:\n{}\nworker 2:\n{}",
            runs.len(),
            workers[0].stderr(),
            workers[1].stderr()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    // Each (tenant, connector) ran exactly once, and ok.
    let mut pairs: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["tenant"].as_str().unwrap_or("?"),
                r["module"].as_str().unwrap_or("?")
            )
        })
        .collect();
    pairs.sort();
    let n = pairs.len();
    pairs.dedup();
    assert_eq!((n, pairs.len()), (want, want), "one run per (tenant, connector)");
    let took_over = workers
        .iter()
        .any(|w| w.stderr().contains("taking over a lease whose holder stopped"));
    assert!(
        took_over,
        "the killed worker held leases mid-run, and a survivor took one over"
    );
    let failed: Vec<&Value> = runs.iter().filter(|r| r["status"] != "ok").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(!victims_done.is_empty());

    // Every tenant's values are its own, exactly.
    let rows = json_of(&k, &cfg, &["values", "pp_vap_count", "--limit", "1000"]).await["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rows.len(), TENANTS as usize);
    for r in &rows {
        let i: u32 = r["tenant"].as_str().and_then(|t| t[1..].parse().ok()).expect("t<i>");
        assert_eq!(r["value"], tenant_vap_users(i), "{r}");
    }

    // The API saw no tenant's run twice at once and no pool over its limit.
    for i in 1..=TENANTS {
        let siem = k.sandbox.max_in_flight_of(i, "/v2/siem/all");
        assert!(
            (1..=4).contains(&siem),
            "tenant {i}: {siem} SIEM requests at once (concurrency is 4)"
        );
        assert_eq!(
            k.sandbox.max_in_flight_of(i, "/v2/efd/dmarc/domains"),
            1,
            "tenant {i}: EFD twice at once"
        );
        assert!(k.sandbox.pool_calls(i, "siem") <= 1800);
        assert!(k.sandbox.pool_calls(i, "campaign-ids") <= 50);
    }

    for mut w in workers {
        w.signal(libc::SIGTERM);
        assert_eq!(w.exit(Duration::from_secs(30)).await.0, 0);
    }
}

/// `kri --config CFG ARGS --output json`, which must succeed.
async fn json_of(k: &Kri, cfg: &std::path::Path, args: &[&str]) -> Value {
    let mut all = vec!["--config", cfg.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", "json"]);
    let out = k.run(&all, &[]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    out.json()
}
