//! Events leave kri: a `file` sink gets each band change once, from the run that made it; a
//! sink that fails keeps its events waiting and tries again; past `max_age` they are dead.

use serde_json::Value;

use crate::helper::Kri;

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_band_change_reaches_a_file_sink_once() {
    let k = Kri::default().await;
    // VAP 12 is amber at the default 10 / 25: a first amber value is a change from no band.
    let cfg = k.config("[sinks.audit]\ntype = \"file\"\npath = \"events.ndjson\"\n");
    let cfg = cfg.to_str().unwrap();
    let file = k.dir.path().join("events.ndjson");
    assert_eq!(k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await.code, 0);
    let got = lines(&file);
    let vap: Vec<&Value> = got.iter().filter(|e| e["kri"]["slug"] == "pp_vap_count").collect();
    assert_eq!(vap.len(), 1, "{got:?}");
    assert_eq!(vap[0]["type"], "kri.band_changed");
    assert_eq!(
        (vap[0]["kri"]["from"].clone(), vap[0]["kri"]["to"].clone()),
        (Value::Null, "amber".into())
    );
    assert_eq!(vap[0]["kri"]["value"], 12.0);
    assert!(vap[0]["id"].as_str().is_some_and(|id| id.len() == 36), "{}", vap[0]);
    // The same values again: no change, nothing more; nothing is sent twice.
    k.advance(chrono::Duration::hours(1));
    assert_eq!(k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await.code, 0);
    assert_eq!(lines(&file).len(), got.len());
    let sinks = k.run(&["--config", cfg, "sinks", "--output", "json"], &[]).await.json();
    let audit = &sinks["sinks"][0];
    assert_eq!(
        (audit["name"].as_str(), audit["type"].as_str()),
        (Some("audit"), Some("file"))
    );
    assert_eq!(
        (
            audit["delivered"].as_i64(),
            audit["waiting"].as_i64(),
            audit["dead"].as_i64()
        ),
        (Some(got.len() as i64), Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_sink_keeps_its_events_then_gives_up_after_max_age() {
    let k = Kri::default().await;
    // A folder where the file should be: every append fails.
    std::fs::create_dir(k.dir.path().join("events.ndjson")).unwrap();
    let cfg = k.config("[sinks.audit]\ntype = \"file\"\npath = \"events.ndjson\"\nmax_age = \"2h\"\n");
    let cfg = cfg.to_str().unwrap();
    let run = k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await;
    assert_eq!(run.code, 0, "a sink that fails does not fail the run: {run:?}");
    assert!(
        run.stderr.contains("sink audit: events wait") && run.stderr.contains("cannot append"),
        "{run:?}"
    );
    let sinks = k.run(&["--config", cfg, "sinks", "--output", "json"], &[]).await.json();
    let audit = &sinks["sinks"][0];
    assert!(
        audit["waiting"].as_i64().unwrap() >= 1 && audit["attempts"] == 1,
        "{audit}"
    );
    assert_eq!(audit["dead"], 0);
    let first = audit["waiting"].as_i64().unwrap();
    // Three hours later, still failing, a run makes a new change (VAP 12 is red at 5 / 6):
    // the events past max_age are dead, with why; the new one waits.
    k.advance(chrono::Duration::hours(3));
    let strict = k.dir.path().join("strict.toml");
    std::fs::write(
        &strict,
        std::fs::read_to_string(cfg).unwrap() + "[thresholds.pp_vap_count]\namber = 5\nred = 6\n",
    )
    .unwrap();
    let strict = strict.to_str().unwrap();
    assert_eq!(k.run(&["--config", strict, "run", "--only", "tap"], &[]).await.code, 0);
    let sinks = k
        .run(&["--config", strict, "sinks", "--output", "json"], &[])
        .await
        .json();
    let audit = &sinks["sinks"][0];
    assert_eq!(
        (audit["dead"].as_i64(), audit["waiting"].as_i64()),
        (Some(first), Some(1)),
        "{audit}"
    );
    assert!(
        audit["last_error"].as_str().unwrap().contains("cannot append"),
        "{audit}"
    );
    // A test event says what happens now.
    let test = k.run(&["--config", strict, "sinks", "test", "audit"], &[]).await;
    assert_eq!(test.code, 1, "{test:?}");
    assert!(
        test.stderr.contains("0 delivered, 1 not") && test.stderr.contains("cannot append"),
        "{test:?}"
    );
    // The file can be written again: the new change arrives, alone.
    std::fs::remove_dir(k.dir.path().join("events.ndjson")).unwrap();
    k.advance(chrono::Duration::hours(1));
    assert_eq!(k.run(&["--config", strict, "run", "--only", "efd"], &[]).await.code, 0);
    let got = lines(&k.dir.path().join("events.ndjson"));
    let vap: Vec<&Value> = got.iter().filter(|e| e["kri"]["slug"] == "pp_vap_count").collect();
    assert_eq!(vap.len(), 1, "{got:?}");
    assert_eq!(
        (vap[0]["kri"]["from"].as_str(), vap[0]["kri"]["to"].as_str()),
        (Some("amber"), Some("red"))
    );
    // The dead ones, tried again by hand, arrive and leave the dead list; a test event too.
    let retry = k.run(&["--config", strict, "sinks", "retry", "audit"], &[]).await;
    assert_eq!(retry.code, 0, "{retry:?}");
    assert!(retry.stdout.contains(&format!("{first} delivered")), "{retry:?}");
    let sinks = k
        .run(&["--config", strict, "sinks", "--output", "json"], &[])
        .await
        .json();
    assert_eq!(sinks["sinks"][0]["dead"], 0, "{sinks}");
    assert_eq!(
        k.run(&["--config", strict, "sinks", "test", "audit"], &[]).await.code,
        0
    );
    let all = lines(&k.dir.path().join("events.ndjson"));
    assert_eq!(all.len() as i64, got.len() as i64 + first + 1, "{all:?}");
    assert_eq!(all.last().unwrap()["type"], "sink.test");
    // A bad sink table is a config error naming the key, before any call.
    let bad = k.config("[sinks.audit]\ntype = \"fax\"\n");
    let out = k.run(&["--config", bad.to_str().unwrap(), "run"], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("sinks.audit.type") && out.stderr.contains("unknown sink type `fax`"),
        "{out:?}"
    );
}

/// `kri serve` delivers continuously: a band change is in the file within seconds of its run.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_delivers_a_band_change_within_seconds_of_its_run() {
    let k = Kri::default().await;
    let cfg = k.config("[sinks.audit]\ntype = \"file\"\npath = \"events.ndjson\"\nevents = [\"kri.band_changed\"]\n");
    let mut s = k.start(&cfg, &["serve", "--listen", "127.0.0.1:0"], &[]).await;
    s.runs_of(&["tap"]).await;
    let file = k.dir.path().join("events.ndjson");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !lines(&file).iter().any(|e| e["kri"]["slug"] == "pp_vap_count") {
        assert!(
            std::time::Instant::now() < deadline,
            "no band change delivered within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(lines(&file).iter().all(|e| e["type"] == "kri.band_changed"));
    // /metrics says so, per sink.
    let (_, metrics) = s.get("/metrics").await;
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|m| m.metric == name && m.labels.get("sink") == Some("audit"))
            .map(|m| match m.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {name}:\n{metrics}"))
    };
    assert!(value("kri_sink_events_delivered_total") >= 1.0);
    assert_eq!(value("kri_sink_events_dead"), 0.0);
    assert_eq!(value("kri_sink_oldest_waiting_age_seconds"), 0.0);
    crate::helper::promtool_check_metrics(&metrics);
    // The dashboard says where events go.
    let (code, page) = s.get("/").await;
    assert_eq!(code, 200);
    let section = &page[page.find("id=\"sinks\"").expect("a Notifications section")..];
    assert!(
        section.contains("<code>audit</code>") && section.contains("file"),
        "{section}"
    );
}

/// A webhook gets the batch as `{"events": […]}` with an `Idempotency-Key`, once; its URL (a
/// credential) shows nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_gets_each_band_change_once_with_an_idempotency_key() {
    let k = Kri::default().await;
    let receiver = kri_sandbox::faults::Recorder::start().await.unwrap();
    let url = format!("{}/hooks/kri-s3cret-path", receiver.base_url());
    let cfg = k.config(&format!("[sinks.soc]\ntype = \"webhook\"\nurl = \"{url}\"\n"));
    let cfg = cfg.to_str().unwrap();
    let run = k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let posts = receiver.requests();
    assert_eq!(posts.len(), 1, "one POST for the run's batch: {posts:?}");
    assert_eq!(
        (posts[0].method.as_str(), posts[0].path.as_str()),
        ("POST", "/hooks/kri-s3cret-path")
    );
    assert!(
        posts[0]
            .header("idempotency-key")
            .is_some_and(|k| k.starts_with("kri-"))
    );
    let body: Value = serde_json::from_str(&posts[0].body).unwrap();
    let events = body["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "kri.band_changed" && e["kri"]["slug"] == "pp_vap_count"),
        "{body}"
    );
    k.advance(chrono::Duration::hours(1));
    assert_eq!(k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await.code, 0);
    assert_eq!(receiver.count(), 1, "nothing new, nothing twice");
    let check = k
        .run(&["--config", cfg, "config", "check", "--output", "json"], &[])
        .await;
    assert!(
        !check.all().contains("kri-s3cret-path") && !run.all().contains("kri-s3cret-path"),
        "{check:?}"
    );
}

/// Splunk's HTTP Event Collector gets the batch in its own format, with the token, once.
#[tokio::test(flavor = "multi_thread")]
async fn splunk_hec_gets_the_batch_in_its_format_with_the_token() {
    let k = Kri::default().await;
    let hec = kri_sandbox::faults::Recorder::start().await.unwrap();
    let token = "hec-t0ken-5ecret";
    let cfg = k.config(&format!(
        "[sinks.splunk]\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"{token}\"\nindex = \"security\"\n",
        hec.base_url()
    ));
    let run = k
        .run(&["--config", cfg.to_str().unwrap(), "run", "--only", "tap"], &[])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let posts = hec.requests();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].path, "/services/collector/event");
    assert_eq!(
        posts[0].header("authorization"),
        Some(format!("Splunk {token}").as_str())
    );
    let objects: Vec<Value> = posts[0]
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        objects
            .iter()
            .all(|o| o["index"] == "security" && o["sourcetype"] == "kri:event" && o["time"].is_number())
    );
    assert!(
        objects.iter().any(|o| o["event"]["kri"]["slug"] == "pp_vap_count"),
        "{objects:?}"
    );
    assert!(!run.all().contains(token));
}

/// `for = 2`: a band is sent once it has held two runs; `repeat_every = "2h"`: an amber band is
/// sent again two hours later while it holds. Both are made from each run's values.
#[tokio::test(flavor = "multi_thread")]
async fn for_and_repeat_every_shape_what_a_sink_gets() {
    let k = Kri::default().await;
    let bad = k.config("[sinks.steady]\ntype = \"file\"\npath = \"s.ndjson\"\nfor = 0\n");
    let check = k
        .run(&["--config", bad.to_str().unwrap(), "config", "check"], &[])
        .await;
    assert_eq!(check.code, 2, "{check:?}");
    assert!(check.stderr.contains("sinks.steady.for"), "{check:?}");
    let cfg = k.config(
        "[sinks.steady]\ntype = \"file\"\npath = \"steady.ndjson\"\nfor = 2\n\n\
         [sinks.remind]\ntype = \"file\"\npath = \"remind.ndjson\"\nrepeat_every = \"2h\"\n",
    );
    let cfg = cfg.to_str().unwrap();
    let vap = |name: &str| -> Vec<(Value, Value, Value)> {
        lines(&k.dir.path().join(name))
            .into_iter()
            .filter(|e| e["kri"]["slug"] == "pp_vap_count")
            .map(|e| (e["kri"]["from"].clone(), e["kri"]["to"].clone(), e["repeat"].clone()))
            .collect()
    };
    let run = || async {
        let r = k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await;
        assert_eq!(r.code, 0, "{r:?}");
        k.advance(chrono::Duration::hours(1));
    };
    run().await;
    assert_eq!(vap("steady.ndjson"), vec![], "one amber run is not two");
    let first = (Value::Null, Value::from("amber"), Value::from(false));
    assert_eq!(vap("remind.ndjson"), vec![first.clone()]);
    run().await;
    assert_eq!(vap("steady.ndjson"), vec![first.clone()]);
    assert_eq!(vap("remind.ndjson"), vec![first.clone()], "an hour is not two");
    run().await;
    assert_eq!(vap("steady.ndjson"), vec![first.clone()], "sent once");
    assert_eq!(
        vap("remind.ndjson"),
        vec![first, ("amber".into(), "amber".into(), true.into())],
        "two hours later, again"
    );
}

/// New CTR incidents leave kri as `incident.created`, once each, with the tenant and a summary.
#[tokio::test(flavor = "multi_thread")]
async fn new_incidents_reach_a_sink_once() {
    let k = Kri::default().await;
    let cfg = k.config(&format!(
        "{}\n[sinks.soc]\ntype = \"file\"\npath = \"incidents.ndjson\"\nevents = [\"incident.created\"]\n",
        k.ctr_table(kri_sandbox::ctr::DEMO_CLIENT_SECRET, "enabled = true\n")
    ));
    let cfg = cfg.to_str().unwrap();
    let run = k.run(&["--config", cfg, "run", "--only", "ctr"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let got = lines(&k.dir.path().join("incidents.ndjson"));
    assert!(!got.is_empty(), "the sandbox holds incidents");
    assert!(
        got.iter().all(|e| e["type"] == "incident.created"
            && e["incident"]["module"] == "ctr"
            && e["incident"]["id"].as_str().is_some_and(|id| id.len() == 36)),
        "{got:#?}"
    );
    let ids: std::collections::HashSet<&str> = got.iter().map(|e| e["incident"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), got.len(), "each incident once");
    k.advance(chrono::Duration::hours(1));
    assert_eq!(k.run(&["--config", cfg, "run", "--only", "ctr"], &[]).await.code, 0);
    let all = lines(&k.dir.path().join("incidents.ndjson"));
    let ids: std::collections::HashSet<&str> = all.iter().map(|e| e["incident"]["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids.len(),
        all.len(),
        "no incident twice: {:?}",
        &all[got.len()..].iter().take(2).collect::<Vec<_>>()
    );
}

/// The `alertmanager` sink against a real Alertmanager: a red KRI is an alert in its API with
/// kri's labels, sent again while red; back in green it resolves.
#[tokio::test(flavor = "multi_thread")]
async fn a_breach_is_an_alert_in_alertmanager_until_it_clears() {
    // Alertmanager lives in real time: so do these runs, an hour ago and now (an alert from
    // the fixed test date would have ended long ago).
    let now = chrono::Utc::now() - chrono::Duration::hours(1);
    let k = Kri::new(kri_sandbox::Scenario {
        now: Some(now),
        ..Default::default()
    })
    .await;
    let am = kri_testtls::Alertmanager::start().unwrap_or_else(|e| panic!("{e}"));
    let sink = format!(
        "[sinks.oncall]\ntype = \"alertmanager\"\nurl = \"{}\"\nlabels = {{ team = \"risk\" }}\n",
        am.url()
    );
    let red = k.config(&format!("{sink}[thresholds.pp_vap_count]\namber = 1\nred = 2\n"));
    let run = k
        .run(&["--config", red.to_str().unwrap(), "run", "--only", "tap"], &[])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let breaches = |am: &kri_testtls::Alertmanager| -> Vec<Value> {
        let all: Vec<Value> = serde_json::from_str(&am.get("/api/v2/alerts").unwrap()).unwrap();
        all.into_iter()
            .filter(|a| a["labels"]["alertname"] == "KriBreach" && a["labels"]["slug"] == "pp_vap_count")
            .collect()
    };
    let firing = breaches(&am);
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(
        firing[0]["labels"],
        serde_json::json!({"alertname": "KriBreach", "tenant": "default", "slug": "pp_vap_count",
                           "module": "tap", "band": "red", "severity": "critical", "team": "risk"})
    );
    assert_eq!(firing[0]["status"]["state"], "active");
    // The thresholds raised: VAP is green, the alert resolves.
    let green = k.config(&format!("{sink}[thresholds.pp_vap_count]\namber = 1000\nred = 2000\n"));
    k.advance(chrono::Duration::hours(1));
    let run = k
        .run(&["--config", green.to_str().unwrap(), "run", "--only", "tap"], &[])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(breaches(&am), Vec::<Value>::new(), "resolved");
    let sinks = k
        .run(&["--config", green.to_str().unwrap(), "sinks", "--output", "json"], &[])
        .await
        .json();
    assert_eq!(sinks["sinks"][0]["dead"], 0, "{sinks}");
}

/// The `email` sink through a run: one mail for the run's band changes, listing them all, to a
/// real SMTP server; nothing more when the next run changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_moves_several_kris_sends_one_mail() {
    let k = Kri::default().await;
    let smtp = kri_testtls::Smtpd::start(&[]).unwrap_or_else(|e| panic!("{e}"));
    let cfg = k.config(&format!(
        "[sinks.risk]\ntype = \"email\"\nserver = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n\
         from = \"kri@example.com\"\nto = [\"risk@example.com\"]\n",
        smtp.port
    ));
    let cfg = cfg.to_str().unwrap();
    let run = k.run(&["--config", cfg, "run"], &[]).await;
    assert!(run.code == 0 || run.code == 1, "{run:?}");
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "one mail for the run: {mails:#?}");
    let text: String = mails[0]["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["type"] == "text/plain")
        .filter_map(|p| p["body"].as_str())
        .collect();
    let changed = ["pp_vap_count", "pp_dmarc_enforcement_pct"];
    for slug in changed {
        assert!(text.contains(slug), "{slug} in the mail: {text}");
    }
    assert!(
        mails[0]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("KRIs changed band")),
        "{}",
        mails[0]["subject"]
    );
    k.advance(chrono::Duration::hours(1));
    k.run(&["--config", cfg, "run"], &[]).await;
    assert_eq!(smtp.messages().len(), 1, "nothing changed, nothing sent");
}

/// `[kris.SLUG]` travels with what a KRI tells: the run JSON has its title and owner, its band
/// change the title, owner and action.
#[tokio::test(flavor = "multi_thread")]
async fn a_band_change_carries_the_kris_title_owner_and_action() {
    let k = Kri::default().await;
    let cfg = k.config(
        "[sinks.audit]\ntype = \"file\"\npath = \"events.ndjson\"\n\
         [kris.pp_vap_count]\ntitle = \"People attacked most\"\nowner = \"Head of SecOps\"\n\
         action = \"https://wiki.example/vap\"\n",
    );
    let run = k
        .run(
            &[
                "--config",
                cfg.to_str().unwrap(),
                "run",
                "--only",
                "tap",
                "--output",
                "json",
            ],
            &[],
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let vap = crate::helper::kri(&run.json(), "pp_vap_count").clone();
    assert_eq!(
        (vap["title"].as_str(), vap["owner"].as_str()),
        (Some("People attacked most"), Some("Head of SecOps"))
    );
    let other = crate::helper::kri(&run.json(), "pp_malicious_delivered_24h").clone();
    assert_eq!(
        (other["title"].as_str(), other["owner"].as_str()),
        (Some("Threats delivered (24 h)"), None)
    );
    let events = lines(&k.dir.path().join("events.ndjson"));
    let change = events
        .iter()
        .find(|e| e["kri"]["slug"] == "pp_vap_count")
        .expect("VAP's band change");
    assert_eq!(
        (
            change["kri"]["title"].as_str(),
            change["kri"]["owner"].as_str(),
            change["kri"]["action"].as_str()
        ),
        (
            Some("People attacked most"),
            Some("Head of SecOps"),
            Some("https://wiki.example/vap")
        )
    );
}
