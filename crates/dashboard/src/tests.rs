//! Page tests: structure, modes, escaping, no external references.

use chrono::{DateTime, TimeZone, Utc};

use crate::format::{ago, num, path_segment, query_value};
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
        title: format!("Title of {slug}"),
        owner: None,
        action: None,
        standing: Standing::default(),
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
        sinks: vec![SinkRow {
            name: "soc".into(),
            kind: "webhook".into(),
            delivered: 41,
            waiting: 3,
            dead: 2,
            oldest_waiting: Some("2026-11-20T06:05:00Z".into()),
            last_error: Some("HTTP 500 from <soc.example>".into()),
        }],
        actions,
        tenant: None,
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
                change: Some(-2.0),
            },
            ValueRow {
                measured_at: "2025-03-02T06:00:00Z".into(),
                value: None,
                status: "failed".into(),
                band: None,
                message: Some("upstream 503".into()),
                run_id: "run-2".into(),
                change: None,
            },
        ],
        tenant: None,
        how: "GET /v2/people/vap?window=30 → totalVapUsers".into(),
        appetite: Some("At most 10 people attacked this hard".into()),
        range: Some("30d".into()),
        breaches: vec![Breach {
            band: "amber".into(),
            entered: at(3, 6),
            left: None,
            acknowledged: Some(Acknowledgement {
                by: Some("Ana".into()),
                note: "known campaign".into(),
                until: None,
            }),
        }],
        perpetual: None,
        actions: Actions::Disabled("no token".into()),
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
    assert_self_contained_with(html, &[]);
}

/// [`assert_self_contained`], also allowing links that start with one of `also` (e.g. `./?tenant=`).
fn assert_self_contained_with(html: &str, also: &[&str]) {
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
        // Links within the site only: a section, a KRI page, back, a KRI page's ranges
        // (`SLUG?range=`), a value's run in the API.
        let range = href
            .split_once("?range=")
            .is_some_and(|(slug, _)| !slug.contains(['/', ':']));
        assert!(
            href.starts_with('#')
                || href.starts_with("kri/")
                || href == "../"
                || href.starts_with("../api/v1/runs?run=")
                || range
                || also.iter().any(|a| href.starts_with(a)),
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
    // Each cell carries its column's name: at 375 px a row becomes a card of "name: value".
    assert!(html.contains("<th scope=\"row\" data-label=\"Module\"><code>tap</code></th>"));
    assert!(html.contains(
        "<span class=\"st st-partial\">partial</span><br><span class=\"error\">SIEM hour 05:00 timed out</span>"
    ));
    assert!(html.contains("<span class=\"st st-running\">running</span>"));
    assert!(html.contains("<td data-label=\"Last run\">never</td>"));
    assert!(html.contains("<td data-label=\"Next run\">—</td>"), "no next run");
    assert!(html.contains("<caption>Recent runs, newest first</caption>"));
    assert!(html.contains(
        "<td class=\"num\" data-label=\"Rows written\">14</td><td class=\"num\" data-label=\"API calls\">26</td>"
    ));
    assert_eq!(html.matches("<table class=\"stack\">").count(), 2, "both tables stack");
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
        sinks: vec![],
        actions: Actions::Enabled,
        tenant: None,
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
    p.tile.title = evil.into();
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
    assert!(html.contains("<title>Title of pp_vap_count — kri</title>"));
    assert!(html.contains("<h1 id=\"kri-h\">Title of pp_vap_count</h1>"));
    assert!(html.contains("<code>pp_vap_count</code>"), "the slug under the title");
    // How it is measured, the appetite, the ranges (the shown one not a link), the breach log,
    // and each value's change, its run a link rather than a column.
    assert!(html.contains("How it is measured") && html.contains("GET /v2/people/vap?window=30"));
    assert!(html.contains("Appetite: At most 10 people attacked this hard"));
    assert!(
        html.contains("href=\"pp_vap_count?range=7d\"") && html.contains("<strong aria-current=\"page\">30d</strong>")
    );
    assert!(!html.contains("href=\"pp_vap_count?range=30d\""));
    assert!(
        html.contains("Stays in amber or red") && html.contains("still amber") && html.contains("Ana: known campaign")
    );
    assert!(html.contains("href=\"../api/v1/runs?run=run-3\""));
    assert!(!html.contains(">Run id<"), "no run id column");
    assert!(html.contains("data-label=\"Change\">-2<"), "{html}");
    assert!(html.contains("What pp_vap_count means"));
    assert!(html.contains("href=\"../\""));
    assert!(html.contains("AMBER</span>"));
    assert!(html.contains("viewBox=\"0 0 720 240\""));
    assert!(html.contains(">amber 10</text>") && html.contains(">red 25</text>"));
    assert_eq!(html.matches("<circle").count(), 3);
    assert!(html.contains("<caption>Values of Title of pp_vap_count, newest first</caption>"));
    assert!(
        html.contains(
            "title=\"run run-3\"><time datetime=\"2025-03-03T06:00:00Z\">2025-03-03 06:00 UTC</time></a></th>"
        )
    );
    assert!(html.contains(
        "<td class=\"num\" data-label=\"Change\">—</td><td data-label=\"Band\">—</td>\
         <td data-label=\"Status\"><span class=\"st st-failed\">failed</span> <span class=\"message\">upstream 503</span></td>"
    ), "{html}");
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

/// The links a tenant's pages may have besides the single-tenant ones.
const TENANT_LINKS: &[&str] = &["./", "../?tenant="];

fn tenant_sample(actions: Actions, name: &str) -> Dashboard {
    Dashboard {
        tenant: Some(name.into()),
        ..sample(actions)
    }
}

fn bands(name: &str, red: u32, amber: u32, green: u32, no_value: u32, failed_connectors: u32) -> TenantBands {
    TenantBands {
        name: name.into(),
        red,
        amber,
        green,
        no_value,
        failed_connectors,
        last_run: Some(at(20, 4)),
        cells: [(red, "red"), (amber, "amber"), (green, "green")]
            .iter()
            .flat_map(|(n, b)| std::iter::repeat_n(Some(b.to_string()), *n as usize))
            .chain(std::iter::repeat_n(None, no_value as usize))
            .collect(),
    }
}

fn overview_sample(actions: Actions) -> Overview {
    Overview {
        generated_at: at(20, 7),
        tenants: vec![
            bands("zeta", 0, 0, 5, 0, 0),
            bands("beta", 0, 2, 3, 0, 1),
            bands("alpha", 0, 2, 3, 0, 1),
            bands("quiet", 0, 0, 0, 4, 0),
            bands("gamma", 0, 2, 3, 0, 0),
            bands("acme", 1, 0, 4, 0, 0),
            bands("empty", 0, 0, 0, 0, 0),
            bands("worst", 3, 1, 0, 0, 2),
        ],
        actions,
        kris: (1..=5).map(|i| (format!("pp_k{i}"), format!("KRI {i}"))).collect(),
    }
}

/// The text of each row header, in page order (with or without its link).
fn row_names(html: &str) -> Vec<String> {
    html.split("<th scope=\"row\">")
        .skip(1)
        .map(|row| {
            let cell = row.split("</th>").next().unwrap_or("");
            let text = cell.rsplit_once("\">").map_or(cell, |(_, text)| text);
            text.split('<').next().unwrap_or("").to_owned()
        })
        .collect()
}

#[test]
fn single_tenant_pages_name_no_tenant() {
    for actions in all_modes() {
        let html = dashboard(&sample(actions.clone()));
        for bad in [
            "class=\"tenant\"",
            "?tenant=",
            "data-tenant=",
            "All tenants",
            "href=\"./\"",
        ] {
            assert!(!html.contains(bad), "found {bad:?} in {actions:?}");
        }
        assert!(html.contains("<title>kri — Key Risk Indicators</title>"));
    }
    let html = dashboard(&sample(Actions::Enabled));
    assert!(html.contains("href=\"kri/pp_vap_count\""));
    let html = kri_page(&kri_sample());
    for bad in ["class=\"tenant\"", "?tenant=", "All tenants"] {
        assert!(!html.contains(bad), "found {bad:?} on the KRI page");
    }
    assert!(html.contains("<nav aria-label=\"Back\"><a href=\"../\">← All KRIs</a></nav>"));
}

#[test]
fn tenant_dashboard_names_the_tenant_and_carries_it_in_links_and_buttons() {
    let html = dashboard(&tenant_sample(Actions::Enabled, "acme"));
    assert_document(&html);
    assert_self_contained_with(&html, TENANT_LINKS);
    assert!(html.contains("<title>acme — kri — Key Risk Indicators</title>"));
    assert!(html.contains("<p class=\"tenant\">Tenant <strong>acme</strong></p>"));
    assert!(html.contains("<li><a href=\"./\">All tenants</a></li>"));
    assert!(html.contains("href=\"kri/pp_vap_count?tenant=acme\""));
    assert_eq!(html.matches("href=\"kri/").count(), 5);
    assert_eq!(
        html.matches("?tenant=acme\"").count(),
        5,
        "every KRI link carries the tenant"
    );
    assert!(html.contains(
        "<button class=\"run-now\" type=\"button\" data-module=\"tap\" data-tenant=\"acme\" id=\"run-now-tap\">Run now</button>"
    ));
    assert!(html.contains(
        "<button class=\"test\" type=\"button\" data-module=\"ctr\" data-tenant=\"acme\" id=\"test-ctr\">Test</button>"
    ));
    assert_eq!(html.matches("data-tenant=\"acme\"").count(), 4);
    for needle in [
        "getAttribute(\"data-tenant\")",
        "\"&tenant=\" + encodeURIComponent(tenant)",
        "module + \" for \" + tenant",
    ] {
        assert!(html.contains(needle), "script lacks {needle}");
    }

    // read-only: the buttons are disabled but still name the tenant
    let html = dashboard(&tenant_sample(all_modes().swap_remove(1), "acme"));
    assert_eq!(html.matches("data-tenant=\"acme\"").count(), 4);
    assert!(html.contains("<li><a href=\"./\">All tenants</a></li>"));

    // a static file names the tenant but links nowhere else
    let html = dashboard(&tenant_sample(Actions::Static, "acme"));
    assert_self_contained(&html);
    assert!(html.contains("<p class=\"tenant\">Tenant <strong>acme</strong></p>"));
    for bad in ["All tenants", "?tenant=", "data-tenant", "<script"] {
        assert!(!html.contains(bad), "found {bad:?} in a static tenant page");
    }
}

#[test]
fn tenant_names_are_encoded_in_links_and_escaped_in_text() {
    let name = "a b&c<d";
    let html = dashboard(&tenant_sample(Actions::Enabled, name));
    assert!(html.contains("href=\"kri/pp_vap_count?tenant=a%20b%26c%3Cd\""));
    assert!(html.contains("Tenant <strong>a b&amp;c&lt;d</strong>"));
    assert!(html.contains("data-tenant=\"a b&amp;c&lt;d\""));
    assert!(!html.contains("c<d"));
    assert_eq!(query_value("acme_2-x"), "acme_2-x");
    assert_eq!(query_value("a+b=c&d#e"), "a%2Bb%3Dc%26d%23e");
}

#[test]
fn tenant_kri_page_links_back_to_the_tenant_and_to_all_tenants() {
    let html = kri_page(&KriPage {
        tenant: Some("acme".into()),
        ..kri_sample()
    });
    assert_document(&html);
    assert_self_contained_with(&html, TENANT_LINKS);
    assert!(html.contains("<title>Title of pp_vap_count — acme — kri</title>"));
    assert!(
        html.contains("href=\"pp_vap_count?range=7d&amp;tenant=acme\""),
        "ranges keep the tenant"
    );
    assert!(html.contains("<p class=\"brand\"><a href=\"../?tenant=acme\">kri</a></p>"));
    assert!(html.contains("<p class=\"tenant\">Tenant <strong>acme</strong></p>"));
    assert!(html.contains("<li><a href=\"../?tenant=acme\">← All KRIs</a></li>"));
    assert!(html.contains("<li><a href=\"../\">All tenants</a></li>"));
}

#[test]
fn overview_sorts_worst_first_and_links_each_tenant() {
    let html = overview_page(&overview_sample(Actions::Disabled("no token".into())));
    assert_document(&html);
    assert_self_contained_with(&html, &["./?tenant="]);
    assert!(html.contains("<title>kri — All tenants</title>"));
    assert!(html.contains("<h1 id=\"tenants-h\">All tenants</h1>"));
    assert_eq!(
        row_names(&html),
        ["worst", "acme", "alpha", "beta", "gamma", "empty", "quiet", "zeta"],
        "red desc, amber desc, failed connectors desc, then name"
    );
    for t in ["worst", "acme", "alpha", "beta", "gamma", "empty", "quiet", "zeta"] {
        assert_eq!(
            html.matches(&format!("<a href=\"./?tenant={t}\">{t}</a>")).count(),
            1,
            "{t}"
        );
    }
    assert!(html.contains("<th scope=\"col\">Failed connectors</th>"));
    assert_eq!(
        html.matches("class=\"table-wrap\"").count(),
        2,
        "the matrix and the table each scroll in their own box"
    );
    // The matrix: tenants worst first, a cell per KRI with the band's letter and colour, each
    // a link to that tenant's KRI page.
    let matrix =
        &html[html.find("id=\"matrix\"").expect("a matrix")..html.find("caption>Tenants, worst first").unwrap()];
    let rows: Vec<&str> = matrix
        .split("<th class=\"tn\" scope=\"row\">")
        .skip(1)
        .map(|r| &r[..r.find('<').unwrap()])
        .collect();
    assert_eq!(
        rows,
        ["worst", "acme", "alpha", "beta", "gamma", "empty", "quiet", "zeta"]
    );
    assert!(
        matrix.contains("<td class=\"band-red\"><a href=\"kri/pp_k1?tenant=worst\">R</a></td>"),
        "{matrix}"
    );
    assert!(matrix.contains("<td class=\"band-other\"><a href=\"kri/pp_k1?tenant=quiet\">–</a></td>"));
    assert!(matrix.contains("<abbr title=\"KRI 1\">pp_k1</abbr>"));
    // live but without buttons or script; it reloads like the read-only dashboard
    for bad in ["<script", "<button", "<form", "<input", "<svg"] {
        assert!(!html.contains(bad), "found {bad:?}");
    }
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"60\">"));
}

#[test]
fn overview_writes_the_worst_band_as_a_word_and_sums_up() {
    let html = overview_page(&overview_sample(Actions::Enabled));
    for (class, word) in [
        ("band-red", "RED"),
        ("band-amber", "AMBER"),
        ("band-green", "GREEN"),
        ("band-other", "NO VALUE"),
        ("band-other", "NONE"),
    ] {
        assert!(
            html.contains(&format!("<td><span class=\"band {class}\">{word}</span></td>")),
            "{word}"
        );
    }
    assert_eq!(html.matches(">RED</span>").count(), 2);
    assert_eq!(html.matches(">AMBER</span>").count(), 3);
    assert!(html.contains(
        "<p class=\"summary\"><strong>8 tenants</strong>: <strong>2</strong> with a red KRI, \
         <strong>3</strong> with amber as the worst band, <strong>3</strong> with a failed connector.</p>"
    ));
    // the worst row, cell by cell
    assert!(html.contains(
        "<td>3</td><td>1</td><td>0</td><td>0</td><td>2</td>\
         <td><time datetime=\"2025-03-20T04:00:00Z\" title=\"2025-03-20 04:00 UTC\">3 h ago</time></td>"
    ));

    let mut one = overview_sample(Actions::Enabled);
    one.tenants.truncate(1);
    one.tenants[0].last_run = None;
    let html = overview_page(&one);
    assert!(html.contains("<strong>1 tenant</strong>: "));
    assert!(html.contains("<td>never</td>"));
}

#[test]
fn overview_escapes_tenant_names() {
    let evil = "<script>alert(1)</script>";
    let mut o = overview_sample(Actions::Enabled);
    o.tenants[0].name = evil.into();
    o.tenants[1].name = "a&b\"c".into();
    let html = overview_page(&o);
    assert!(!html.contains("<script"), "raw <script> in the overview");
    assert!(html.contains(
        "<a href=\"./?tenant=%3Cscript%3Ealert%281%29%3C%2Fscript%3E\">&lt;script&gt;alert(1)&lt;/script&gt;</a>"
    ));
    assert!(html.contains("<a href=\"./?tenant=a%26b%22c\">a&amp;b&quot;c</a>"));
    assert_self_contained_with(&html, &["./?tenant="]);
}

#[test]
fn overview_without_tenants_says_so() {
    for actions in all_modes() {
        let html = overview_page(&Overview {
            generated_at: at(20, 7),
            tenants: vec![],
            actions,
            kris: vec![],
        });
        assert_document(&html);
        assert_self_contained(&html);
        assert!(html.contains("<p>No tenants are configured.</p>"));
        assert!(!html.contains("<table") && !html.contains("class=\"summary\""));
    }
}

#[test]
fn static_overview_has_no_script_reload_or_tenant_links() {
    let html = overview_page(&overview_sample(Actions::Static));
    assert_document(&html);
    assert_self_contained(&html);
    for bad in ["<script", "<button", "<form", "<input", "http-equiv", "href="] {
        assert!(!html.contains(bad), "found {bad:?}");
    }
    assert!(html.contains("<th scope=\"row\">worst</th>"), "names are plain text");
    assert_eq!(row_names(&html).len(), 8);
}

/// The bound on one overview row, all markup included: a thousand tenants stay under 0.4 MB
/// (the table's rows, ~300 bytes each, and the matrix of the 100 worst, ~60 more on average).
const MAX_BYTES_PER_ROW: usize = 400;

/// `n` tenants named `customer-0000` … with a mix of bands, failures and run times.
fn many_tenants(n: u32) -> Overview {
    Overview {
        generated_at: at(20, 7),
        tenants: (0..n)
            .map(|i| TenantBands {
                name: format!("customer-{i:04}"),
                red: i % 7,
                amber: i % 5,
                green: 40,
                no_value: i % 3,
                failed_connectors: i % 11 / 10,
                last_run: (i % 13 != 0).then(|| at(20, 7) - chrono::Duration::minutes(i64::from(i) * 7)),
                cells: (0..10)
                    .map(|k| {
                        ["red", "amber", "green"]
                            .get(((i + k) % 4) as usize)
                            .map(|b| b.to_string())
                    })
                    .collect(),
            })
            .collect(),
        actions: Actions::Enabled,
        kris: (0..10)
            .map(|k| (format!("pp_kri_number_{k}"), format!("KRI {k}")))
            .collect(),
    }
}

/// `cargo test -p kri-dashboard --release -- --nocapture a_thousand` prints the size and time.
#[test]
fn a_thousand_tenants_stay_small() {
    let one = overview_page(&many_tenants(1)).len();
    let started = std::time::Instant::now();
    let html = overview_page(&many_tenants(1000));
    let took = started.elapsed();
    let per_row = (html.len() - one) / 999;
    println!(
        "1000 tenants: {} bytes, {per_row} bytes per row, rendered in {took:?}",
        html.len()
    );
    assert!(per_row < MAX_BYTES_PER_ROW, "{per_row} bytes per row");
    assert_eq!(row_names(&html).len(), 1000);
    assert!(!html.contains("<svg") && !html.contains("<script"));
}

#[test]
fn relative_times() {
    let now = at(20, 12);
    let before = |secs: i64| now - chrono::Duration::seconds(secs);
    assert_eq!(ago(now, now), "just now");
    assert_eq!(ago(before(59), now), "just now");
    assert_eq!(ago(before(-59), now), "just now", "a clock a little ahead");
    assert_eq!(ago(before(60), now), "1 min ago");
    assert_eq!(ago(before(3_599), now), "59 min ago");
    assert_eq!(ago(before(3_600), now), "1 h ago");
    assert_eq!(ago(before(47 * 3_600), now), "47 h ago");
    assert_eq!(ago(before(48 * 3_600), now), "2 days ago");
    assert_eq!(ago(before(400 * 86_400), now), "400 days ago");
    assert_eq!(
        ago(at(20, 13), now),
        "2025-03-20 13:00 UTC",
        "the future is written in full"
    );
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
        dir.join("tenant.html"),
        dashboard(&tenant_sample(Actions::Enabled, "acme")),
    )?;
    std::fs::write(
        dir.join("kri/pp_vap_count-acme"),
        kri_page(&KriPage {
            tenant: Some("acme".into()),
            ..kri_sample()
        }),
    )?;
    std::fs::write(
        dir.join("overview.html"),
        overview_page(&overview_sample(Actions::Enabled)),
    )?;
    std::fs::write(dir.join("overview-1000.html"), overview_page(&many_tenants(1000)))?;
    std::fs::write(
        dir.join("message.html"),
        message_page("Unknown KRI", "No KRI is called nope."),
    )?;
    println!("samples in {}", dir.display());
    Ok(())
}

#[test]
fn the_notifications_section_says_where_events_go_and_what_waits() {
    let html = dashboard(&sample(Actions::Enabled));
    let section = &html[html.find("id=\"sinks\"").expect("a notifications section")..];
    for want in [
        "Notifications",
        "soc",
        "webhook",
        "41",
        "2026-11-20 06:05 UTC",
        "HTTP 500 from &lt;soc.example&gt;",
    ] {
        assert!(section.contains(want), "{want} in {section}");
    }
    assert!(html.contains("href=\"#sinks\""), "linked from the header");
    let none = dashboard(&Dashboard {
        sinks: vec![],
        ..sample(Actions::Enabled)
    });
    assert!(!none.contains("id=\"sinks\"") && !none.contains("#sinks"));
    let report = dashboard(&sample(Actions::Static));
    assert!(!report.contains("id=\"sinks\""), "live only, never in a report");
}

/// The order tiles take, by slug.
fn order(html: &str) -> Vec<String> {
    html.match_indices("data-slug=\"")
        .map(|(i, m)| {
            let rest = &html[i + m.len()..];
            rest[..rest.find('"').unwrap_or(0)].to_owned()
        })
        .collect()
}

/// A risk manager's page: the summary first, then the worst tiles, each with its title,
/// change, how long in its band, owner and action, and an acknowledgement when there is one.
#[test]
fn the_page_leads_with_a_summary_and_the_worst_tiles_with_what_to_do() {
    let now = at(20, 7);
    let band =
        |slug: &str, value: f64, band: &str| tile(slug, Some(latest(Some(value), "ok", Some(band), None)), &[value]);
    let mut red = band("k_red", 31.0, "red");
    red.standing = Standing {
        previous: Some(12.0),
        band_since: Some(at(18, 7)),
        ..Standing::default()
    };
    red.owner = Some("Head of SecOps".into());
    red.action = Some("https://wiki.example/vap".into());
    let mut amber_overdue = band("k_amber_overdue", 12.0, "amber");
    amber_overdue.standing.overdue = true;
    let mut amber_acked = band("k_amber_acked", 14.0, "amber");
    amber_acked.standing = Standing {
        previous: Some(20.0),
        acknowledged: Some(Acknowledgement {
            by: Some("Ana".into()),
            note: "known campaign".into(),
            until: None,
        }),
        ..Standing::default()
    };
    let mut green = band("k_green", 3.0, "green");
    green.owner = Some("nobody sees this on green".into());
    let mut stale = band("k_stale", 4.0, "green");
    stale.standing.stale = true;
    let failed = tile("k_failed", Some(latest(None, "failed", None, Some("503"))), &[]);
    let mut lower = band("k_lower", 40.0, "amber");
    lower.higher_is_worse = false;
    lower.standing.previous = Some(55.0);
    let d = Dashboard {
        tiles: vec![green, stale, failed, amber_acked, red, lower, amber_overdue],
        generated_at: now,
        ..sample(Actions::Disabled("no token".into()))
    };
    let html = dashboard(&d);
    assert_eq!(
        order(&html),
        [
            "k_red",
            "k_amber_overdue",
            "k_amber_acked",
            "k_lower",
            "k_stale",
            "k_failed",
            "k_green"
        ],
        "red, amber (overdue first), stale or failed, green"
    );
    let summary = &html[html.find("id=\"summary\"").expect("a summary")..];
    let summary = &summary[..summary.find("</p>").unwrap()];
    let text: String = summary
        .split('<')
        .filter_map(|p| p.split_once('>').map(|(_, t)| t))
        .collect();
    assert_eq!(text, "1 red · 3 amber · 1 green · 2 stale or failed · 1 overdue");
    assert!(
        html.find("id=\"summary\"") < html.find("data-slug"),
        "the summary comes before the tiles"
    );

    let tile_of = |slug: &str| {
        let start = html.find(&format!("data-slug=\"{slug}\"")).unwrap();
        let end = html[start..].find("</article>").unwrap() + start;
        html[start..end].to_owned()
    };
    let red = tile_of("k_red");
    assert!(
        red.find("Title of k_red") < red.find("<code>k_red</code>"),
        "title first, slug second: {red}"
    );
    assert!(red.contains("data-change=\"worse\"") && red.contains("+19"), "{red}");
    assert!(
        red.contains("red since <time datetime=\"2025-03-18T07:00:00Z\">18 Mar</time> (2 days)"),
        "{red}"
    );
    assert!(red.contains("Owner: Head of SecOps"), "{red}");
    assert!(red.contains("<a href=\"https://wiki.example/vap\""), "{red}");
    let acked = tile_of("k_amber_acked");
    assert!(
        acked.contains("data-change=\"better\""),
        "higher is worse, and it went down: {acked}"
    );
    assert!(
        acked.contains("Acknowledged by Ana") && acked.contains("known campaign"),
        "{acked}"
    );
    assert!(tile_of("k_amber_overdue").contains("Overdue"));
    assert!(
        tile_of("k_lower").contains("data-change=\"worse\""),
        "lower is worse, and it went down"
    );
    assert!(
        !tile_of("k_green").contains("Owner:"),
        "owner and action only on amber and red"
    );
    assert!(tile_of("k_stale").contains("Stale"));
}

#[test]
fn an_amber_kri_page_offers_the_acknowledgement_form_with_the_token() {
    let enabled = kri_page(&KriPage {
        actions: Actions::Enabled,
        ..kri_sample()
    });
    assert_document(&enabled);
    for part in [
        "<form id=\"ack-form\" data-slug=\"pp_vap_count\"",
        "id=\"ack-note\"",
        "id=\"ack-until\"",
        "id=\"ack-token\" type=\"password\"",
        "id=\"ack-status\" role=\"status\"",
    ] {
        assert!(enabled.contains(part), "{part}");
    }
    assert_eq!(enabled.matches("<script>").count(), 1, "its one script");
    let disabled = kri_page(&kri_sample());
    assert!(!disabled.contains("<form") && !disabled.contains("<script"));
    assert!(
        disabled.contains("kri ack pp_vap_count --note TEXT"),
        "says how without a token"
    );
    let mut green = kri_sample();
    green.actions = Actions::Enabled;
    green.tile.latest = Some(latest(Some(3.0), "ok", Some("green"), None));
    assert!(
        !kri_page(&green).contains("<form id=\"ack-form\""),
        "nothing to acknowledge on green"
    );
}
