//! Page tests: structure, modes, escaping, no external references.

use chrono::{DateTime, TimeZone, Utc};

use crate::format::{num, path_segment};
use crate::*;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, day, hour, 0, 0)
        .single()
        .unwrap_or_default()
}

fn tile(slug: &str, latest: Option<Latest>, values: &[f64]) -> Tile {
    Tile {
        slug: slug.into(),
        module: "tap".into(),
        meaning: format!("What {slug} means"),
        unit: "count".into(),
        higher_is_worse: true,
        amber: 10.0,
        red: 25.0,
        latest,
        history: values
            .iter()
            .zip(1..)
            .map(|(&value, day)| Point { at: at(day, 6), value })
            .collect(),
    }
}

fn latest(value: Option<f64>, status: &str, band: Option<&str>, message: Option<&str>) -> Latest {
    Latest {
        value,
        status: status.into(),
        band: band.map(Into::into),
        message: message.map(Into::into),
        measured_at: at(20, 6),
    }
}

fn sample(actions: Actions) -> Dashboard {
    let mut percent = tile(
        "pp_dmarc_reject_pct",
        Some(latest(Some(200.0 / 3.0), "ok", Some("amber"), None)),
        &[60.0, 66.666],
    );
    percent.unit = "percent".into();
    percent.higher_is_worse = false;
    percent.amber = 80.0;
    percent.red = 50.0;
    Dashboard {
        generated_at: at(20, 7),
        tiles: vec![
            tile(
                "pp_vap_count",
                Some(latest(Some(12.0), "ok", Some("amber"), None)),
                &[3.0, 14.0, 12.0],
            ),
            percent,
            tile(
                "efd_lookalikes",
                Some(latest(None, "unlicensed", None, Some("EFD is not licensed"))),
                &[],
            ),
            tile(
                "clear_fn_rate",
                Some(latest(None, "failed", None, Some("upstream 503"))),
                &[7.5],
            ),
            tile("ctr_open_incidents", None, &[]),
        ],
        connectors: vec![
            ConnectorRow {
                module: "tap".into(),
                description: "Proofpoint TAP".into(),
                schedule: "hourly".into(),
                running: true,
                last_run: Some(LastRun {
                    at: at(20, 6),
                    status: "partial".into(),
                    error: Some("SIEM hour 05:00 timed out".into()),
                }),
                next_run: Some(at(20, 8)),
            },
            ConnectorRow {
                module: "ctr".into(),
                description: "Cloud Threat Response".into(),
                schedule: "daily".into(),
                running: false,
                last_run: None,
                next_run: None,
            },
        ],
        runs: vec![RunRow {
            run_id: "0b6f6a2e-4f1c-4c52-9d2e-0d6b1f6e2a11".into(),
            module: "tap".into(),
            started_at: "2025-03-20T06:00:00Z".into(),
            finished_at: "2025-03-20T06:01:30Z".into(),
            status: "partial".into(),
            rows_written: 14,
            api_calls: 26,
            error: Some("SIEM hour 05:00 timed out".into()),
        }],
        feeds: vec![Feed {
            module: "ctr".into(),
            title: "Newest CTR incidents".into(),
            items: vec![FeedItem {
                id: "INC-42".into(),
                title: "Phish reported by finance".into(),
                at: Some(at(19, 22)),
                fields: vec![("state".into(), "open".into()), ("score".into(), "87".into())],
            }],
        }],
        actions,
    }
}

fn all_modes() -> Vec<Actions> {
    vec![
        Actions::Enabled,
        Actions::Disabled("Set [serve] token or KRI_SERVE__TOKEN to enable Run now and Test".into()),
        Actions::Static,
    ]
}

fn kri_sample() -> KriPage {
    KriPage {
        generated_at: at(20, 7),
        tile: tile(
            "pp_vap_count",
            Some(latest(Some(12.0), "ok", Some("amber"), None)),
            &[3.0, 14.0, 12.0],
        ),
        values: vec![
            ValueRow {
                measured_at: "2025-03-03T06:00:00Z".into(),
                value: Some(12.0),
                status: "ok".into(),
                band: Some("amber".into()),
                message: None,
                run_id: "run-3".into(),
            },
            ValueRow {
                measured_at: "2025-03-02T06:00:00Z".into(),
                value: None,
                status: "failed".into(),
                band: None,
                message: Some("upstream 503".into()),
                run_id: "run-2".into(),
            },
        ],
    }
}

/// Starts with the doctype, one `<html lang="en">`, charset, viewport, a title, one style, ends closed.
fn assert_document(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..40.min(html.len())]);
    assert_eq!(html.matches("<html").count(), 1);
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.ends_with("</html>"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
    let head = html.split("</head>").next().unwrap_or("");
    assert_eq!(head.matches("<title>").count(), 1);
    assert_eq!(html.matches("<style>").count(), 1);
    assert_eq!(html.matches("<main>").count(), 1);
    assert_eq!(html.matches("<h1").count(), 1);
}

/// Nothing is loaded or linked from another origin: no URLs with a scheme, no `src=`, links only
/// in-page (`#…`) or relative (`kri/…`, `../`).
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for bad in [
        "http://",
        "https://",
        "src=",
        "url(",
        "@import",
        "<link",
        "<img",
        "<iframe",
        "//cdn",
        "localstorage",
        "sessionstorage",
        "document.cookie",
    ] {
        assert!(!lower.contains(bad), "found {bad:?}");
    }
    for part in html.split("href=\"").skip(1) {
        let href = part.split('"').next().unwrap_or("");
        assert!(
            href.starts_with('#') || href.starts_with("kri/") || href == "../",
            "unexpected link {href:?}"
        );
    }
}

#[test]
fn dashboard_is_a_document_in_every_mode() {
    for actions in all_modes() {
        let html = dashboard(&sample(actions.clone()));
        assert_document(&html);
        assert_self_contained(&html);
        assert!(html.contains("<title>kri — Key Risk Indicators</title>"));
        assert!(html.contains("generated <time datetime=\"2025-03-20T07:00:00Z\">2025-03-20 07:00 UTC</time>"));
        for slug in [
            "pp_vap_count",
            "pp_dmarc_reject_pct",
            "efd_lookalikes",
            "clear_fn_rate",
            "ctr_open_incidents",
        ] {
            assert_eq!(
                html.matches(&format!("data-slug=\"{slug}\"")).count(),
                1,
                "{slug} in {actions:?}"
            );
        }
        assert_eq!(html.matches("<article class=\"tile\"").count(), 5);
        let refresh = html.contains("<meta http-equiv=\"refresh\" content=\"60\">");
        assert_eq!(refresh, matches!(actions, Actions::Disabled(_)), "{actions:?}");
    }
}

#[test]
fn tiles_write_band_status_and_value_as_words() {
    let html = dashboard(&sample(Actions::Static));
    assert!(html.contains("data-band=\"amber\" data-status=\"ok\""));
    assert!(html.contains("AMBER</span>"));
    assert!(html.contains("12</p>"), "a count has no unit suffix");
    assert!(html.contains("66.67<span class=\"unit\">%</span>"));
    assert!(html.contains(
        "<span class=\"st st-unlicensed\">unlicensed</span>: <span class=\"message\">EFD is not licensed</span>"
    ));
    assert!(html.contains("<span class=\"st st-failed\">failed</span>: <span class=\"message\">upstream 503</span>"));
    assert!(html.contains("data-band=\"none\" data-status=\"none\""));
    assert!(html.contains("never measured"));
    assert!(html.contains("measured <time datetime=\"2025-03-20T06:00:00Z\">"));
    assert!(html.contains("amber at 10, red at 25 · higher is worse"));
    assert!(html.contains("amber at 80 %, red at 50 % · lower is worse"));
    // every tile has a described chart
    assert_eq!(html.matches("<svg class=\"spark\"").count(), 5);
    assert_eq!(html.matches("role=\"img\" aria-label=\"").count(), 5);
    assert!(html.contains("aria-label=\"pp_vap_count over the last 30 days: 3 values from 3 to 14, latest 12; amber at 10, red at 25 (higher is worse)\""));
}

#[test]
fn static_report_has_no_buttons_forms_script_or_app_links() {
    let html = dashboard(&sample(Actions::Static));
    for bad in [
        "<script",
        "<button",
        "<form",
        "<input",
        "http-equiv",
        "href=\"kri/",
        "id=\"action-status\"",
    ] {
        assert!(!html.contains(bad), "found {bad:?}");
    }
    assert!(html.contains("id=\"kri-pp_vap_count\""), "tiles are in-page anchors");
    // the rest is still there
    assert!(html.contains("Newest CTR incidents"));
    assert!(html.contains("<code class=\"id\">0b6f6a2e-4f1c-4c52-9d2e-0d6b1f6e2a11</code>"));
}

#[test]
fn disabled_mode_shows_disabled_buttons_and_the_reason_once() {
    let why = "Set [serve] token or KRI_SERVE__TOKEN to enable Run now and Test";
    let html = dashboard(&sample(Actions::Disabled(why.into())));
    assert_eq!(html.matches(why).count(), 1);
    assert!(html.contains(
        "<button class=\"run-now\" type=\"button\" data-module=\"tap\" id=\"run-now-tap\" disabled aria-describedby=\"actions-note\">Run now</button>"
    ));
    assert!(html.contains(
        "<button class=\"test\" type=\"button\" data-module=\"ctr\" id=\"test-ctr\" disabled aria-describedby=\"actions-note\">Test</button>"
    ));
    assert_eq!(html.matches("<button").count(), 4);
    assert_eq!(html.matches(" disabled ").count(), 4);
    assert!(!html.contains("<script"));
    assert!(!html.contains("id=\"token\""));
    assert!(html.contains("href=\"kri/pp_vap_count\""));
}

#[test]
fn enabled_mode_has_token_field_live_region_working_buttons_and_the_script() {
    let html = dashboard(&sample(Actions::Enabled));
    assert!(html.contains("<label for=\"token\">API token</label>"));
    assert!(html.contains("<input id=\"token\" type=\"password\" autocomplete=\"off\""));
    assert!(html.contains("<p id=\"action-status\" role=\"status\" aria-live=\"polite\"></p>"));
    assert!(
        html.contains(
            "<button class=\"run-now\" type=\"button\" data-module=\"tap\" id=\"run-now-tap\">Run now</button>"
        )
    );
    assert!(html.contains("<button class=\"test\" type=\"button\" data-module=\"tap\" id=\"test-tap\">Test</button>"));
    assert!(!html.contains(" disabled"));
    assert_eq!(html.matches("<script>").count(), 1);
    for needle in [
        "\"api/v1/runs?module=\"",
        "\"api/v1/test?module=\"",
        "method: \"POST\"",
        "\"Bearer \"",
        "b.run_id",
        "b.test_id",
        "b.message",
    ] {
        assert!(html.contains(needle), "script lacks {needle}");
    }
    assert!(html.contains("href=\"kri/pp_vap_count\""));
}

#[test]
fn connectors_and_runs_tables() {
    let html = dashboard(&sample(Actions::Static));
    assert!(html.contains("<caption>Connectors, their schedule and their last and next run</caption>"));
    assert!(html.contains("<th scope=\"row\"><code>tap</code></th>"));
    assert!(html.contains(
        "<span class=\"st st-partial\">partial</span><br><span class=\"error\">SIEM hour 05:00 timed out</span>"
    ));
    assert!(html.contains("<span class=\"st st-running\">running</span>"));
    assert!(html.contains("<td>never</td>"));
    assert!(html.contains("<td>—</td>"), "no next run");
    assert!(html.contains("<caption>Recent runs, newest first</caption>"));
    assert!(html.contains("<td class=\"num\">14</td><td class=\"num\">26</td>"));
    assert_eq!(html.matches("class=\"table-wrap\"").count(), 2);
}

#[test]
fn empty_dashboard_leaves_out_feeds() {
    let d = Dashboard {
        generated_at: at(1, 0),
        tiles: vec![],
        connectors: vec![],
        runs: vec![],
        feeds: vec![],
        actions: Actions::Enabled,
    };
    let html = dashboard(&d);
    assert_document(&html);
    assert_self_contained(&html);
    assert!(!html.contains("id=\"feeds\""));
    assert!(!html.contains("href=\"#feeds\""));
    assert!(html.contains("No KRIs are configured."));
    assert!(html.contains("No runs yet."));
}

#[test]
fn every_string_is_escaped() {
    let evil = "<script>alert(1)</script>";
    let mut d = sample(Actions::Disabled(evil.into()));
    d.tiles[0].slug = evil.into();
    d.tiles[0].meaning = evil.into();
    d.tiles[0].latest = Some(latest(None, "failed", Some(evil), Some(evil)));
    d.connectors[0].module = evil.into();
    d.connectors[0].description = evil.into();
    d.runs[0].error = Some(evil.into());
    d.runs[0].started_at = evil.into();
    d.feeds[0].items[0].fields.push((evil.into(), evil.into()));
    let html = dashboard(&d);
    assert!(!html.contains("<script"), "raw <script> in the page");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("href=\"kri/%3Cscript%3Ealert%281%29%3C%2Fscript%3E\""));
    assert_self_contained(&html);

    // enabled: exactly our own script, nothing injected
    d.actions = Actions::Enabled;
    let html = dashboard(&d);
    assert_eq!(html.matches("<script").count(), 1);

    let mut p = kri_sample();
    p.tile.slug = evil.into();
    p.values[0].message = Some(evil.into());
    p.values[0].run_id = evil.into();
    let html = kri_page(&p);
    assert!(!html.contains("<script"));
    assert!(html.contains("<title>&lt;script&gt;alert(1)&lt;/script&gt; — kri</title>"));

    let html = message_page(evil, evil);
    assert!(!html.contains("<script"));
    assert_document(&html);
}

#[test]
fn kri_page_has_facts_chart_and_values() {
    let html = kri_page(&kri_sample());
    assert_document(&html);
    assert_self_contained(&html);
    assert!(!html.contains("<script") && !html.contains("http-equiv"));
    assert!(html.contains("<title>pp_vap_count — kri</title>"));
    assert!(html.contains("<h1 id=\"kri-h\">pp_vap_count</h1>"));
    assert!(html.contains("What pp_vap_count means"));
    assert!(html.contains("href=\"../\""));
    assert!(html.contains("AMBER</span>"));
    assert!(html.contains("viewBox=\"0 0 720 240\""));
    assert!(html.contains(">amber 10</text>") && html.contains(">red 25</text>"));
    assert_eq!(html.matches("<circle").count(), 3);
    assert!(html.contains("<caption>Values of pp_vap_count, newest first</caption>"));
    assert!(
        html.contains("<th scope=\"row\"><time datetime=\"2025-03-03T06:00:00Z\">2025-03-03 06:00 UTC</time></th>")
    );
    assert!(html.contains(
        "<td class=\"num\">—</td><td>—</td><td><span class=\"st st-failed\">failed</span></td><td>upstream 503</td>"
    ));
}

#[test]
fn kri_page_without_values() {
    let mut p = kri_sample();
    p.tile.latest = None;
    p.tile.history.clear();
    p.values.clear();
    let html = kri_page(&p);
    assert_document(&html);
    assert!(html.contains("never measured"));
    assert!(html.contains("No values recorded yet."));
    assert!(html.contains("no values yet"));
}

#[test]
fn message_page_is_small_and_complete() {
    let html = message_page("Unknown KRI", "No KRI is called nope.");
    assert_document(&html);
    assert_self_contained(&html);
    assert!(html.contains("<h1 id=\"msg-h\">Unknown KRI</h1>"));
    assert!(html.contains("<p>No KRI is called nope.</p>"));
    assert!(!html.contains("<script"));
}

#[test]
fn numbers() {
    assert_eq!(num(12.0), "12");
    assert_eq!(num(200.0 / 3.0), "66.67");
    assert_eq!(num(0.5), "0.50");
    assert_eq!(num(-0.0), "0");
    assert_eq!(num(-0.001), "0");
    assert_eq!(num(-3.0), "-3");
    assert_eq!(num(12.001), "12");
    assert_eq!(num(1e20), "1.000e20");
    assert_eq!(num(f64::NAN), "—");
    assert_eq!(num(f64::INFINITY), "—");
}

#[test]
fn path_segments() {
    assert_eq!(path_segment("pp_vap_count"), "pp_vap_count");
    assert_eq!(path_segment("a b/c?d#é"), "a%20b%2Fc%3Fd%23%C3%A9");
}

/// Writes the sample pages for a look in a browser:
/// `cargo test -p kri-dashboard -- --ignored write_samples`.
#[test]
#[ignore = "writes files for a manual look"]
fn write_samples() -> std::io::Result<()> {
    let dir = std::env::temp_dir().join("kri-dashboard-samples");
    std::fs::create_dir_all(dir.join("kri"))?;
    std::fs::write(dir.join("index.html"), dashboard(&sample(Actions::Enabled)))?;
    std::fs::write(
        dir.join("disabled.html"),
        dashboard(&sample(all_modes().swap_remove(1))),
    )?;
    std::fs::write(dir.join("static.html"), dashboard(&sample(Actions::Static)))?;
    std::fs::write(dir.join("kri/pp_vap_count"), kri_page(&kri_sample()))?;
    std::fs::write(
        dir.join("message.html"),
        message_page("Unknown KRI", "No KRI is called nope."),
    )?;
    println!("samples in {}", dir.display());
    Ok(())
}
