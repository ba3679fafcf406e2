//! Delivery under faults, against the sandbox's receiver (it counts every event id it accepted):
//! a receiver down during a run, kri killed with -9 while a delivery hangs, a receiver that
//! answers 500 or never answers, and three workers on one PostgreSQL store. Each event arrives
//! exactly once, or is dead with its error after `max_age`; none is lost.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use kri_sandbox::receiver::{Answer, Receiver};
use serde_json::Value;

use crate::helper::Kri;

/// `[sinks.soc]`, a webhook to `receiver`, with `extra` keys.
fn webhook(receiver: &Receiver, extra: &str) -> String {
    format!(
        "[sinks.soc]\ntype = \"webhook\"\nurl = \"{}/hook\"\n{extra}",
        receiver.base_url()
    )
}

/// `kri sinks --output json`'s row for `soc`.
async fn soc(k: &Kri, cfg: &str) -> Value {
    let out = k.run(&["--config", cfg, "sinks", "--output", "json"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    out.json()["sinks"][0].clone()
}

/// Every event the receiver accepted arrived once.
fn each_once(r: &Receiver) -> usize {
    let twice: Vec<(String, u32)> = r.ids().into_iter().filter(|(_, n)| *n != 1).collect();
    assert!(twice.is_empty(), "events accepted more than once: {twice:?}");
    r.ids().len()
}

async fn until(what: &str, within: Duration, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_during_a_run_gets_everything_once_when_it_is_back() {
    let k = Kri::default().await;
    let mut receiver = Receiver::start().await.unwrap();
    receiver.stop();
    let cfg = k.config(&webhook(&receiver, ""));
    let cfg = cfg.to_str().unwrap();
    let run = k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await;
    assert_eq!(run.code, 0, "a sink down does not fail the run: {run:?}");
    assert!(run.stderr.contains("sink soc: events wait"), "{run:?}");
    let waiting = soc(&k, cfg).await["waiting"].as_i64().unwrap();
    assert!(waiting >= 1, "the band changes wait");

    receiver.restart().await.unwrap();
    k.advance(chrono::Duration::hours(1));
    let run = k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(each_once(&receiver) as i64, waiting, "what waited, once");
    let row = soc(&k, cfg).await;
    assert_eq!((row["waiting"].as_i64(), row["dead"].as_i64()), (Some(0), Some(0)));
}

/// Killed with -9 while the receiver holds its delivery open (after the run's transaction), kri
/// sends the same events again when it starts again, and the receiver has each once.
#[tokio::test(flavor = "multi_thread")]
async fn killed_while_a_delivery_hangs_kri_delivers_once_after_a_restart() {
    let k = Kri::default().await;
    let receiver = Receiver::start().await.unwrap();
    receiver.answer(Answer::Hang);
    let cfg = k.config(&webhook(&receiver, "timeout = \"60s\"\n"));
    let mut s = k.start(&cfg, &["serve", "--listen", "127.0.0.1:0"], &[]).await;
    s.runs_of(&["tap"]).await;
    until("the delivery reaches the receiver", Duration::from_secs(10), || {
        receiver.requests() >= 1
    })
    .await;
    s.signal(libc::SIGKILL);
    assert_eq!(s.exit(Duration::from_secs(10)).await.0, -1, "killed by a signal");
    assert_eq!(receiver.accepted(), 0);

    receiver.answer(Answer::Accept);
    let cfg = cfg.to_str().unwrap();
    let waiting = soc(&k, cfg).await["waiting"].as_i64().unwrap();
    assert!(waiting >= 1, "the run was stored, its events wait");
    // The killed process's lease on the sink is free at once (its process is gone).
    k.advance(chrono::Duration::hours(1));
    let run = k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(each_once(&receiver) as i64, waiting);
    assert_eq!(soc(&k, cfg).await["waiting"], 0);
}

/// A receiver that answers 500, then never answers: tried again with back-off, never more than
/// once a pass; dead once the oldest event is `max_age` old, with the error; `kri sinks retry`
/// sends the dead events once the receiver is well. A 400 is dead at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_is_retried_then_its_events_are_dead_after_max_age() {
    let k = Kri::default().await;
    let receiver = Receiver::start().await.unwrap();
    receiver.answer(Answer::Status(500));
    let cfg = k.config(&webhook(&receiver, "max_age = \"2h\"\ntimeout = \"1s\"\n"));
    let cfg = cfg.to_str().unwrap();
    async fn run(k: &Kri, cfg: &str) -> crate::helper::Outcome {
        let r = k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await;
        assert_eq!(r.code, 0, "{r:?}");
        r
    }
    run(&k, cfg).await;
    let first = receiver.requests();
    assert!(first >= 1);
    let row = soc(&k, cfg).await;
    assert!(row["last_error"].as_str().is_some_and(|e| e.contains("500")), "{row}");
    assert_eq!(row["dead"], 0);
    k.advance(chrono::Duration::hours(1));
    receiver.answer(Answer::Hang);
    run(&k, cfg).await;
    assert!(receiver.requests() > first, "tried again an hour later");
    assert_eq!(soc(&k, cfg).await["dead"], 0, "an hour is not max_age");
    k.advance(chrono::Duration::minutes(90));
    let r = run(&k, cfg).await;
    let row = soc(&k, cfg).await;
    assert!(row["dead"].as_i64().unwrap() >= 1, "{row} {r:?}");
    assert!(
        row["last_error"].as_str().is_some_and(|e| e.contains("max_age")),
        "{row}"
    );
    let dead = row["dead"].as_i64().unwrap();

    receiver.answer(Answer::Accept);
    let retry = k.run(&["--config", cfg, "sinks", "retry", "soc"], &[]).await;
    assert_eq!(retry.code, 0, "{retry:?}");
    assert_eq!(each_once(&receiver) as i64, dead);
    assert_eq!(soc(&k, cfg).await["dead"], 0);

    // A 400 will not change by trying again: dead at once, not after max_age.
    receiver.answer(Answer::Status(400));
    let t = k.run(&["--config", cfg, "sinks", "test", "soc"], &[]).await;
    assert_eq!(t.code, 1, "{t:?}");
    let k2 = Kri::default().await;
    let cfg2 = k2.config(&webhook(&receiver, ""));
    let cfg2 = cfg2.to_str().unwrap();
    assert_eq!(k2.run(&["--config", cfg2, "run", "--only", "tap"], &[]).await.code, 0);
    let row = soc(&k2, cfg2).await;
    assert!(row["dead"].as_i64().unwrap() >= 1 && row["waiting"] == 0, "{row}");
}

/// Three `kri daemon` workers on one PostgreSQL store with 500 events waiting: the receiver gets
/// each exactly once (the sink's lease: one deliverer at a time; its cursor moves with each batch).
#[tokio::test(flavor = "multi_thread")]
async fn three_workers_on_postgresql_deliver_500_waiting_events_exactly_once() {
    let pg = kri_testpg::TestPg::start().expect("a PostgreSQL server for the test");
    let k = Kri::default().await;
    let receiver = Receiver::start().await.unwrap();
    let cfg = k.config(&webhook(
        &receiver,
        "events = [\"incident.created\", \"kri.band_changed\"]\n",
    ));
    let text = std::fs::read_to_string(&cfg).unwrap();
    let on_pg = text.replacen(
        &format!("path = \"{}\"", k.db().display()),
        &format!("url = \"{}\"", pg.url),
        1,
    );
    assert_ne!(text, on_pg);
    std::fs::write(&cfg, on_pg).unwrap();

    // 500 events in the outbox before any worker starts, written by the store's own feed path.
    let store = kri_core::Store::connect(&pg.url).await.expect("the store");
    let id = |i: usize| format!("00000000-0000-4000-8000-{i:012}");
    let rows: Vec<(String, kri_connector_ctr::fetch::StoredIncident)> = (0..500)
        .map(|i| {
            let incident = serde_json::json!({"id": id(i), "title": format!("incident {i}"), "state": "open"});
            (
                format!("incident/{}", id(i)),
                kri_connector_ctr::fetch::StoredIncident(incident),
            )
        })
        .collect();
    let changes: Vec<kri_core::events::FeedChange> = (0..500)
        .map(|i| kri_core::events::FeedChange {
            id: id(i),
            created: true,
            severity: "warning",
            module: "ctr".into(),
            item: serde_json::json!({"title": format!("incident {i}"), "state": "open"}),
        })
        .collect();
    store
        .state("ctr")
        .put_feed(k.now(), "default", &rows, changes)
        .await
        .expect("seed the outbox");
    let seeded: HashSet<String> = store
        .outbox(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seeded.len(), 500);

    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(k.start(&cfg, &["daemon"], &[]).await);
    }
    until("500 events delivered", Duration::from_secs(120), || {
        seeded.iter().all(|id| receiver.ids().contains_key(id))
    })
    .await;
    // The workers' own runs made events too; let them arrive, then count.
    let cfg = cfg.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while soc(&k, cfg).await["waiting"] != 0 {
        assert!(Instant::now() < deadline, "events still waiting");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let total = store.outbox(0, 10_000).await.unwrap().len();
    assert_eq!(each_once(&receiver), total, "every event of the outbox, once");
    assert!(
        receiver.batches().iter().all(|b| b.len() <= 100),
        "batches of at most 100"
    );
    for mut w in workers {
        w.signal(libc::SIGTERM);
        assert_eq!(w.exit(Duration::from_secs(30)).await.0, 0);
    }
}
