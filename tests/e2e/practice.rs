//! KRI practice through the binary: acknowledgements of a breach, who gave them and why, and
//! how they end.

use crate::helper::Kri;

#[tokio::test(flavor = "multi_thread")]
async fn an_amber_kri_is_acknowledged_with_a_note_and_cleared() {
    let k = Kri::default().await;
    let cfg = k.config("");
    let cfg = cfg.to_str().unwrap();
    let none = k
        .run(&["--config", cfg, "ack", "pp_vap_count", "--note", "seen"], &[])
        .await;
    assert_eq!(none.code, 1, "no store yet: {none:?}");
    assert_eq!(k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await.code, 0);
    // VAP is amber (12 at 10 / 25).
    let ack = k
        .run(
            &[
                "--config",
                cfg,
                "ack",
                "pp_vap_count",
                "--note",
                "known campaign, blocked at the gateway",
                "--until",
                "7d",
                "--by",
                "Ana",
                "--output",
                "json",
            ],
            &[],
        )
        .await;
    assert_eq!(ack.code, 0, "{ack:?}");
    let a = ack.json();
    assert_eq!(
        (a["band"].as_str(), a["by"].as_str(), a["note"].as_str()),
        (
            Some("amber"),
            Some("Ana"),
            Some("known campaign, blocked at the gateway")
        )
    );
    let until = chrono::DateTime::parse_from_rfc3339(a["until"].as_str().unwrap()).unwrap();
    assert_eq!(until.to_utc(), k.now() + chrono::Duration::days(7));
    // A green KRI has nothing to acknowledge; a note must be one line.
    let green = k
        .run(&["--config", cfg, "ack", "pp_bec_impostor_7d", "--note", "x"], &[])
        .await;
    assert_eq!(green.code, 1, "{green:?}");
    assert!(green.stderr.contains("is green"), "{green:?}");
    let two_lines = k
        .run(&["--config", cfg, "ack", "pp_vap_count", "--note", "a\nb"], &[])
        .await;
    assert_eq!(two_lines.code, 2, "{two_lines:?}");
    assert!(two_lines.stderr.contains("one line"), "{two_lines:?}");
    let no_note = k.run(&["--config", cfg, "ack", "pp_vap_count"], &[]).await;
    assert_eq!(no_note.code, 2, "{no_note:?}");
    let cleared = k.run(&["--config", cfg, "ack", "--clear", "pp_vap_count"], &[]).await;
    assert_eq!(cleared.code, 0, "{cleared:?}");
    assert!(cleared.stdout.contains("cleared"), "{cleared:?}");
    let again = k.run(&["--config", cfg, "ack", "--clear", "pp_vap_count"], &[]).await;
    assert!(again.stdout.contains("no acknowledgement"), "{again:?}");
}

/// Values say where a KRI stands: its title and owner, since when it is in its band, whether
/// it is stale, acknowledged or overdue, with the clock the test moves.
#[tokio::test(flavor = "multi_thread")]
async fn values_show_band_since_stale_acknowledged_and_overdue() {
    let k = Kri::default().await;
    let cfg =
        k.config("[connectors.tap]\nschedule = \"hourly\"\n[kris.pp_vap_count]\nowner = \"SecOps lead\"\nrespond_within = { amber = \"2h\", red = \"1h\" }\n");
    let cfg = cfg.to_str().unwrap();
    let first = k.now();
    assert_eq!(k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await.code, 0);
    k.advance(chrono::Duration::hours(1));
    assert_eq!(k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await.code, 0);
    let v = values(&k, cfg).await;
    assert_eq!(v.len(), 2, "{v:?}");
    let (newest, older) = (&v[0], &v[1]);
    assert_eq!(
        (newest["title"].as_str(), newest["owner"].as_str()),
        (Some("Very Attacked People"), Some("SecOps lead"))
    );
    assert_eq!(
        (newest["previous_value"].as_f64(), newest["change"].as_f64()),
        (Some(12.0), Some(0.0))
    );
    let since = first.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        newest["band_since"].as_str(),
        Some(since.as_str()),
        "amber since the first run"
    );
    assert_eq!(
        (
            newest["stale"].as_bool(),
            newest["overdue"].as_bool(),
            newest["acknowledged"].clone()
        ),
        (Some(false), Some(false), serde_json::Value::Null)
    );
    assert_eq!(
        older["band_since"],
        serde_json::Value::Null,
        "only the newest says where it stands"
    );

    // Three hours without a run: the newest value is stale (hourly: older than two hours) and
    // the amber band has outlasted its two hours.
    k.advance(chrono::Duration::hours(3));
    let newest = values(&k, cfg).await[0].clone();
    assert_eq!(
        (newest["stale"].as_bool(), newest["overdue"].as_bool()),
        (Some(true), Some(true)),
        "{newest}"
    );
    // The table says it too, where the width allows.
    let table = k
        .run(&["--config", cfg, "values", "pp_vap_count"], &[("COLUMNS", "220")])
        .await;
    assert!(
        table.stdout.contains("STANDING") && table.stdout.contains("OVERDUE, stale"),
        "{table:?}"
    );
    let ack = k
        .run(
            &["--config", cfg, "ack", "pp_vap_count", "--note", "on it", "--by", "Ana"],
            &[],
        )
        .await;
    assert_eq!(ack.code, 0, "{ack:?}");
    let newest = values(&k, cfg).await[0].clone();
    assert_eq!(newest["overdue"], false, "acknowledged: {newest}");
    assert_eq!(
        (
            newest["acknowledged"]["by"].as_str(),
            newest["acknowledged"]["note"].as_str()
        ),
        (Some("Ana"), Some("on it"))
    );
    // One run in full (kri history --run) has the same fields.
    let run_id = newest["run_id"].as_str().unwrap().to_owned();
    let one = k
        .run(&["--config", cfg, "history", "--run", &run_id, "--output", "json"], &[])
        .await;
    assert!(
        one.stdout.contains("\"owner\": \"SecOps lead\"") && one.stdout.contains("\"by\": \"Ana\""),
        "{one:?}"
    );
    let csv = k
        .run(&["--config", cfg, "values", "pp_vap_count", "--output", "csv"], &[])
        .await;
    let header = csv.stdout.lines().next().unwrap_or_default();
    assert!(
        header.ends_with("tenant,title,owner,band_since,stale,acknowledged_by,overdue"),
        "{header}"
    );
    assert!(
        csv.stdout.lines().nth(1).is_some_and(|l| l.contains(",Ana,false")),
        "{csv:?}"
    );
}

/// `kri values SLUG --output json`'s rows.
async fn values(k: &Kri, cfg: &str) -> Vec<serde_json::Value> {
    let out = k
        .run(&["--config", cfg, "values", "pp_vap_count", "--output", "json"], &[])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    out.json()["values"].as_array().unwrap().clone()
}

/// `POST /api/v1/ack` (the KRI page's form): token-guarded, the same checks as `kri ack`, and
/// what it records shows in `/api/v1/values`.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_acknowledges_with_the_token_and_clears() {
    let k = Kri::default().await;
    let token = "t0ken-for-the-ack-api-0123456789";
    let cfg = k.config("[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n");
    let mut s = k
        .start(
            &cfg,
            &["serve", "--listen", "127.0.0.1:0"],
            &[("KRI_SERVE__TOKEN", token)],
        )
        .await;
    s.runs_of(&["tap"]).await;
    let body = serde_json::json!({"slug": "pp_vap_count", "note": "known campaign", "until": "7d", "by": "Ana"});
    assert_eq!(s.post_json("/api/v1/ack", None, &body).await.0, 401);
    assert_eq!(
        s.post_json("/api/v1/ack", Some("wrong-token-wrong-token"), &body)
            .await
            .0,
        401
    );
    let (code, a) = s.post_json("/api/v1/ack", Some(token), &body).await;
    assert_eq!(code, 201, "{a}");
    assert_eq!((a["band"].as_str(), a["by"].as_str()), (Some("amber"), Some("Ana")));
    let values = s.get_json("/api/v1/values?slug=pp_vap_count&limit=1").await;
    assert_eq!(
        values["values"][0]["acknowledged"]["note"], "known campaign",
        "{values}"
    );
    // The KRI page: its breach log has the acknowledgement; a range; its values' runs as links.
    let (code, page) = s.get("/kri/pp_vap_count?range=7d").await;
    assert_eq!(code, 200);
    assert!(
        page.contains("still amber") && page.contains("Ana: known campaign"),
        "{page}"
    );
    assert!(page.contains("<strong aria-current=\"page\">7d</strong>") && page.contains("How it is measured"));
    let run_id = values["values"][0]["run_id"].as_str().unwrap().to_owned();
    assert!(page.contains(&format!("../api/v1/runs?run={run_id}")), "{page}");
    let run = s.get_json(&format!("/api/v1/runs?run={run_id}")).await;
    assert!(
        run["values"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v["slug"] == "pp_vap_count")),
        "{run}"
    );
    assert_eq!(s.get("/api/v1/runs?run=not-a-uuid").await.0, 400);
    for (bad, code) in [
        (serde_json::json!({"slug": "pp_vap_count", "note": "a\nb"}), 400),
        (serde_json::json!({"slug": "pp_vap_count"}), 400),
        (serde_json::json!({"slug": "pp_nope", "note": "x"}), 400),
        (serde_json::json!({"slug": "pp_bec_impostor_7d", "note": "x"}), 409),
    ] {
        let (got, answer) = s.post_json("/api/v1/ack", Some(token), &bad).await;
        assert_eq!(got, code, "{bad}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{answer}");
    }
    let (code, c) = s
        .post_json(
            "/api/v1/ack",
            Some(token),
            &serde_json::json!({"slug": "pp_vap_count", "clear": true}),
        )
        .await;
    assert_eq!((code, c["cleared"].as_bool()), (200, Some(true)), "{c}");
    let values = s.get_json("/api/v1/values?slug=pp_vap_count&limit=1").await;
    assert_eq!(values["values"][0]["acknowledged"], serde_json::Value::Null);
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit(std::time::Duration::from_secs(30)).await.0, 0);
}

/// The text a page shows, one line per block, tags dropped (for a reviewable snapshot).
fn page_text(html: &str) -> String {
    let main = &html[html.find("<main").unwrap_or(0)..];
    let mut out = String::new();
    let mut in_tag = false;
    let mut tag = String::new();
    for c in main.chars() {
        match c {
            '<' => {
                in_tag = true;
                tag.clear();
            }
            '>' if in_tag => {
                in_tag = false;
                let name = tag.trim_start_matches('/').split([' ', '>']).next().unwrap_or_default();
                if ["p", "li", "tr", "h2", "h3", "caption", "article", "section"].contains(&name)
                    && !out.ends_with('\n')
                {
                    out.push('\n');
                } else if ["td", "th"].contains(&name) && !out.ends_with([' ', '\n']) {
                    out.push_str(" | ");
                }
            }
            _ if in_tag => tag.push(c),
            _ => out.push(c),
        }
    }
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "|")
        .collect::<Vec<_>>()
        .join("\n")
}

/// `kri report --html --period 7d` is an executive page: where the KRIs stand, what changed
/// over the period, the breaches with owner, action, acknowledgement and overdue, the trends;
/// no live-only column.
#[tokio::test(flavor = "multi_thread")]
async fn the_report_is_an_executive_page_for_its_period() {
    let k = Kri::default().await;
    // Three days ago VAP (12) was green under a higher amber; now it is amber at the defaults.
    let before = k.config("[kris.pp_vap_count]\namber = 100\nred = 200\n");
    assert_eq!(k.run(&["--config", before.to_str().unwrap(), "run"], &[]).await.code, 0);
    k.advance(chrono::Duration::days(3));
    let cfg = k.config(
        "[kris.pp_vap_count]\nowner = \"Head of SecOps\"\naction = \"Review the VAP list with HR\"\n\
         respond_within = { amber = \"1d\" }\n",
    );
    let cfg = cfg.to_str().unwrap();
    assert_eq!(k.run(&["--config", cfg, "run"], &[]).await.code, 0);
    assert_eq!(
        k.run(
            &[
                "--config",
                cfg,
                "ack",
                "pp_dmarc_enforcement_pct",
                "--note",
                "rollout in Q1",
                "--by",
                "Ana"
            ],
            &[]
        )
        .await
        .code,
        0
    );
    let file = k.dir.path().join("report.html");
    let out = k
        .run(
            &[
                "--config",
                cfg,
                "report",
                "--html",
                file.to_str().unwrap(),
                "--period",
                "7d",
            ],
            &[],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let html = std::fs::read_to_string(&file).unwrap();
    for live in ["Next run", ">Now<", "Run now", "<script", "http-equiv", "href="] {
        assert!(!html.contains(live), "{live} in the report");
    }
    assert!(html.contains("@media print") && html.contains("size: A4"));
    let text = page_text(&html);
    assert!(text.contains("Very Attacked People GREEN → AMBER"), "{text}");
    insta::assert_snapshot!("report_7d", text);
}
