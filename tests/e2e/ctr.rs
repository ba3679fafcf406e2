//! `kri ctr …` and the CTR part of `kri run` against the sandbox CTR API: 230 incidents created
//! in one second, pages capped at 200, OAuth client credentials.

use kri_sandbox::ctr::{CREATED_24H, DEMO_CLIENT_SECRET, OPEN};
use serde_json::{Value, json};

use crate::helper::{Kri, Outcome, kri};

async fn ctr(k: &Kri, extra: &str, args: &[&str]) -> Outcome {
    let cfg = k.config(&k.ctr_table(DEMO_CLIENT_SECRET, extra));
    let mut all = vec!["--config", cfg.to_str().unwrap(), "ctr"];
    all.extend_from_slice(args);
    // A wide terminal: every column of the incident tables is shown.
    k.run(&all, &[("COLUMNS", "400")]).await
}

async fn stored(k: &Kri) -> Vec<Value> {
    let store = kri_core::Store::open(&k.db()).unwrap();
    kri_connector_ctr::stored_incidents(&store.state("ctr")).await.unwrap()
}

fn ids(v: &Value) -> Vec<String> {
    v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_fetch_cycles_deliver_every_open_incident_exactly_once_then_nothing() {
    let k = Kri::default().await;
    let mut delivered = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..7 {
        let out = ctr(&k, "max_fetch = 50\n", &["fetch", "--output", "json"]).await;
        assert_eq!(out.code, 0, "{out:?}");
        let v = out.json();
        assert!(v["incidents"].as_array().unwrap().iter().all(|i| i["state"] == "open"));
        sizes.push(v["incidents"].as_array().unwrap().len());
        delivered.extend(ids(&v));
    }
    assert_eq!(
        sizes,
        [50, 50, 50, 50, 35, 0, 0],
        "235 open incidents, 230 of them in one second"
    );
    let mut unique = delivered.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((delivered.len(), unique.len()), (OPEN, OPEN));
    let mut in_store: Vec<String> = stored(&k)
        .await
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    in_store.sort();
    assert_eq!(in_store, unique, "the store holds exactly the delivered incidents");
    // 7 processes, 1 token each; the 5th and later cycles read two pages (the burst is > 200).
    assert_eq!(k.sandbox.hits("/v1/token"), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_json_output() {
    let k = Kri::default().await;
    let out = ctr(&k, "max_fetch = 2\nenrich = true\n", &["fetch", "--output", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_json_snapshot!("ctr_fetch", out.json(), {
        ".incidents[].createdAt" => "[time]", ".incidents[].updatedAt" => "[time]",
        ".incidents[].openedAt" => "[time]",
        ".incidents[].activities[].created_at" => "[time]", ".incidents[].activities[].occurred_at" => "[time]",
    });
    let table = ctr(&k, "max_fetch = 2\n", &["fetch"]).await;
    assert_eq!(table.code, 0, "{table:?}");
    assert!(table.stdout.contains("2 new incidents; more are waiting"), "{table:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_with_filters_json_and_table() {
    let k = Kri::default().await;
    let out = ctr(
        &k,
        "",
        &[
            "incidents",
            "list",
            "--states",
            "open_incidents",
            "--dispositions",
            "phish",
            "--sources",
            "abuse_mailbox",
            "--start-time",
            "3 days",
            "--limit",
            "2",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert!(v["total"].as_u64().unwrap() > 2);
    insta::assert_json_snapshot!("ctr_list", v, {
        ".incidents[].createdAt" => "[time]", ".incidents[].updatedAt" => "[time]",
    });
    let all = ctr(&k, "", &["incidents", "list", "--limit", "450", "--output", "json"]).await;
    assert_eq!(all.json()["incidents"].as_array().unwrap().len(), 240, "paged past 200");
    let table = ctr(&k, "", &["incidents", "list", "--incident-ids", "900,901"]).await;
    assert_eq!(table.code, 0, "{table:?}");
    for col in [
        "ID",
        "Created At",
        "Type",
        "State",
        "Message Count",
        "Assigned Team Name",
        "Title",
        "Source Types",
        "AbuseMailbox",
        "2 incidents shown of 2 matching",
    ] {
        assert!(table.stdout.contains(col), "{col}: {}", table.stdout);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_filters_are_refused_before_any_call() {
    let k = Kri::default().await;
    for (args, reason) in [
        (vec!["--states", "open_incidents,closed_incidents"], "return nothing"),
        (vec!["--dispositions", "phishy"], "`phishy`"),
        (
            vec!["--incident-ids", "440def43-c322-42ba-a6d6-a2306128ea3b"],
            "display id",
        ),
        (vec!["--start-time", "whenever"], "--start-time"),
    ] {
        let mut all = vec!["incidents", "list"];
        all.extend(args);
        let out = ctr(&k, "", &all).await;
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stderr.contains(reason), "{reason}: {out:?}");
    }
    let out = ctr(&k, "", &["incidents", "get", "../../etc/passwd"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(k.sandbox.hits("/v1/token"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_shows_details_updates_the_stored_row_and_reports_a_failed_id_without_hiding_others() {
    let k = Kri::default().await;
    let fetched = ctr(&k, "max_fetch = 1\n", &["fetch", "--output", "json"]).await.json();
    let id = ids(&fetched)[0].clone();
    let missing = "00000000-0000-4000-8000-00000000dead";
    let out = ctr(
        &k,
        "",
        &["incidents", "get", &format!("{id},{missing}"), "--output", "json"],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    let v = out.json();
    assert_eq!(v["errors"][0]["id"], missing);
    assert!(v["errors"][0]["error"].as_str().unwrap().contains("404"));
    insta::assert_json_snapshot!("ctr_get", v, {
        ".incidents[].createdAt" => "[time]", ".incidents[].updatedAt" => "[time]",
        ".incidents[].openedAt" => "[time]",
        ".incidents[].activities[].created_at" => "[time]", ".incidents[].activities[].occurred_at" => "[time]",
    });
    let rows = stored(&k).await;
    assert_eq!(rows.len(), 1, "get enriched the fetched row, no duplicate");
    assert_eq!(rows[0]["activities"][0]["activity_type"], "incident_creation");
    let table = ctr(&k, "", &["incidents", "get", &id]).await;
    assert_eq!(table.code, 0, "{table:?}");
    assert!(table.stdout.contains("1 activity"), "{table:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_measures_the_ctr_kris_and_feeds_the_store() {
    let k = Kri::default().await;
    let cfg = k.config(&k.ctr_table(DEMO_CLIENT_SECRET, "enabled = true\n"));
    let out = k.run_only(&cfg, "ctr", &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let run = out.json();
    assert_eq!(kri(&run, "ctr_open_incidents")["value"], json!(OPEN));
    assert_eq!(kri(&run, "ctr_incidents_created_24h")["value"], json!(CREATED_24H));
    assert_eq!(kri(&run, "ctr_mean_time_to_close_hours_30d")["value"], json!(3));
    assert_eq!(kri(&run, "ctr_open_incidents")["band"], "red");
    assert_eq!(stored(&k).await.len(), 50, "the run did one feed cycle (max_fetch 50)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_client_secret_is_a_clear_error_that_never_shows_the_secret() {
    let k = Kri::default().await;
    let cfg = k.config(&k.ctr_table("wrong-secret-value", ""));
    let out = k.run(&["--config", cfg.to_str().unwrap(), "ctr", "fetch"], &[]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("HTTP 401") && out.stderr.contains("client_secret") && out.stderr.contains("/v1/token"),
        "{out:?}"
    );
    assert!(!out.all().contains("wrong-secret-value"));
}

#[tokio::test(flavor = "multi_thread")]
async fn test_ctr_probes_with_one_call_and_reports_the_open_count() {
    let k = Kri::default().await;
    let cfg = k.config(&k.ctr_table(DEMO_CLIENT_SECRET, "enabled = true\n"));
    let out = k.run(&["--config", cfg.to_str().unwrap(), "test", "ctr"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&format!("{OPEN} open incidents")), "{out:?}");
    assert_eq!(k.sandbox.hits("/api/v1/tric/incidents"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_secret_can_come_from_the_environment_and_a_missing_table_is_explained() {
    let k = Kri::default().await;
    let table = k.ctr_table("unused", "").replace("client_secret = \"unused\"\n", "");
    let cfg = k.config(&table);
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "ctr",
        "incidents",
        "list",
        "--limit",
        "1",
    ];
    let out = k.run(&args, &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("KRI_CONNECTORS__CTR__CLIENT_SECRET"), "{out:?}");
    let out = k
        .run(&args, &[("KRI_CONNECTORS__CTR__CLIENT_SECRET", DEMO_CLIENT_SECRET)])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.all().contains(DEMO_CLIENT_SECRET));

    let bare = k.config("");
    let out = k.run(&["--config", bare.to_str().unwrap(), "ctr", "fetch"], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("[connectors.ctr]") && out.stderr.contains("sample.toml"),
        "{out:?}"
    );
}

/// At 100 columns the incident list keeps its titles (the other free text gives way first), and
/// its JSON carries the same "of N matching" total as the table.
#[tokio::test(flavor = "multi_thread")]
async fn a_100_column_list_keeps_the_titles_and_json_has_the_tables_total() {
    let k = Kri::default().await;
    let cfg = k.config(&k.ctr_table(DEMO_CLIENT_SECRET, ""));
    let cfg = cfg.to_str().unwrap();
    let table = k
        .run(
            &["--config", cfg, "ctr", "incidents", "list", "--limit", "3"],
            &[("COLUMNS", "100")],
        )
        .await;
    assert_eq!(table.code, 0, "{table:?}");
    assert!(
        table.stdout.lines().next().is_some_and(|h| h.contains("Title")),
        "{}",
        table.stdout
    );
    let json = k
        .run(
            &[
                "--config",
                cfg,
                "ctr",
                "incidents",
                "list",
                "--limit",
                "3",
                "--output",
                "json",
            ],
            &[],
        )
        .await
        .json();
    let total = json["total"].as_u64().expect("a total");
    assert!(
        table.stdout.contains(&format!("3 incidents shown of {total} matching")),
        "{}",
        table.stdout
    );
}
