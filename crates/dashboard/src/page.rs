//! The dashboard, one KRI and message pages, and the document frame every page shares.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::chart::{chart, sparkline};
use crate::format::{NONE, band, opt_num, path_segment, status, tenant_query, time, time_str, unit_suffix, with_unit};
use crate::{Actions, ConnectorRow, Dashboard, Feed, KriPage, Latest, RunRow, SinkRow, Tile, ValueRow};

/// All the CSS; inlined into every page.
const CSS: &str = include_str!("style.css");
/// Wires Run now / Test (only in [`Actions::Enabled`]).
const SCRIPT: &str = include_str!("actions.js");
/// Wires the acknowledgement form of a KRI page (only in [`Actions::Enabled`]).
const ACK_SCRIPT: &str = include_str!("ack.js");

/// A complete document around `body`.
pub(crate) fn document(title: &str, refresh: bool, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh {
                    meta http-equiv="refresh" content="60";
                }
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

/// `generated 2025-01-01 12:00 UTC`.
pub(crate) fn generated(at: DateTime<Utc>) -> Markup {
    html! { p.generated { "generated " (time(at)) } }
}

/// A table in a scroll container, so a wide table never widens the page. The container is
/// focusable so keyboard users can scroll it.
pub(crate) fn table_wrap(label: &str, table: Markup) -> Markup {
    html! {
        div.table-wrap role="region" aria-label=(label) tabindex="0" { (table) }
    }
}

/// The full HTML document of the dashboard.
///
/// Sections: KRI tiles, connectors (with Run now / Test in live modes), recent runs, and feeds
/// (left out when there are none). A read-only live page ([`Actions::Disabled`]) reloads every
/// 60 s ([`Actions::Enabled`] does not: a reload would wipe a token being typed); [`Actions::Static`] has no buttons, no forms, no script, no reload, and tiles are
/// not links.
///
/// With a [`Dashboard::tenant`] the header names the tenant and (when live) links to the overview
/// (`./`), KRI links carry `?tenant=NAME`, and the Run now / Test buttons carry `data-tenant`.
pub fn dashboard(d: &Dashboard) -> String {
    let live = !matches!(d.actions, Actions::Static);
    let tenant = d.tenant.as_deref();
    let body = html! {
        header.site {
            h1 { "kri" }
            (tenant_name(tenant))
            (generated(d.generated_at))
            nav aria-label="Sections" {
                ul {
                    @if live && tenant.is_some() {
                        li { a href="./" { "All tenants" } }
                    }
                    li { a href="#kris" { "KRIs" } }
                    li { a href="#connectors" { "Connectors" } }
                    li { a href="#runs" { "Runs" } }
                    @if !d.feeds.is_empty() {
                        li { a href="#feeds" { "Feeds" } }
                    }
                    @if live && !d.sinks.is_empty() {
                        li { a href="#sinks" { "Notifications" } }
                    }
                }
            }
        }
        main {
            section #kris aria-labelledby="kris-h" {
                h2 #kris-h { "Key Risk Indicators" }
                @if d.tiles.is_empty() {
                    p { "No KRIs are configured." }
                } @else {
                    (summary(&d.tiles))
                    div.tiles {
                        @for t in worst_first(&d.tiles) { (tile(t, live, tenant, d.generated_at)) }
                    }
                }
            }
            (connectors(&d.connectors, &d.actions, tenant))
            (runs(&d.runs))
            @if !d.feeds.is_empty() {
                section #feeds aria-labelledby="feeds-h" {
                    h2 #feeds-h { "Feeds" }
                    @for f in &d.feeds { (feed(f)) }
                }
            }
            // How delivery stands now: live pages only, never a report.
            @if live && !d.sinks.is_empty() { (sinks(&d.sinks)) }
        }
        @if matches!(d.actions, Actions::Enabled) {
            script { (PreEscaped(SCRIPT)) }
        }
    };
    // A live page refreshes itself each minute, except where a token may be being typed (a
    // refresh would wipe it): there the Run now / Test answers say what happened.
    let refresh = live && !matches!(d.actions, Actions::Enabled);
    let title = match tenant {
        Some(t) => format!("{t} — kri — Key Risk Indicators"),
        None => "kri — Key Risk Indicators".to_owned(),
    };
    document(&title, refresh, body)
}

/// `Tenant NAME` in the header of a tenant's page; nothing for a single-tenant install.
fn tenant_name(tenant: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = tenant {
            p.tenant { "Tenant " strong { (t) } }
        }
    }
}

/// Value, band, status, message and time of the latest measurement; shared by the tile and the KRI page.
fn latest_facts(t: &Tile) -> Markup {
    let suffix = unit_suffix(&t.unit);
    html! {
        @match &t.latest {
            None => {
                p.value { span aria-hidden="true" { (NONE) } }
                p.never { "never measured" }
            }
            Some(l) => {
                p.value {
                    @match l.value {
                        Some(v) => {
                            (opt_num(Some(v)))
                            @if !suffix.is_empty() { span.unit { (suffix) } }
                        }
                        None => {
                            span aria-hidden="true" { (NONE) }
                            span.vh { "no value" }
                        }
                    }
                }
                (latest_words(l))
                p.measured { "measured " (time(l.measured_at)) }
            }
        }
    }
}

/// Band word and, unless ok, the status word with its message.
fn latest_words(l: &Latest) -> Markup {
    html! {
        @if let Some(b) = &l.band {
            p { (band(b)) }
        }
        @if l.status != "ok" {
            p.status {
                (status(&l.status))
                @if let Some(m) = &l.message { ": " span.message { (m) } }
            }
        } @else if let Some(m) = &l.message {
            p.message { (m) }
        }
    }
}

/// "amber at 10, red at 25 · higher is worse".
fn thresholds_line(t: &Tile) -> Markup {
    html! {
        p.thresholds {
            "amber at " (with_unit(t.amber, &t.unit)) ", red at " (with_unit(t.red, &t.unit))
            " · " @if t.higher_is_worse { "higher is worse" } @else { "lower is worse" }
        }
    }
}

/// The tiles worst first ([`Tile::rank`]); the configured order within a rank.
pub(crate) fn worst_first(tiles: &[Tile]) -> Vec<&Tile> {
    let mut sorted: Vec<&Tile> = tiles.iter().collect();
    sorted.sort_by_key(|t| t.rank());
    sorted
}

/// "2 red · 6 amber · 3 green · 1 stale or failed · 1 overdue": the page in one line, first.
pub(crate) fn summary(tiles: &[Tile]) -> Markup {
    let count = |place: u8| tiles.iter().filter(|t| t.rank().0 == place).count();
    let overdue = tiles.iter().filter(|t| t.standing.overdue).count();
    let parts = [
        (count(0), "red", "band-red"),
        (count(1), "amber", "band-amber"),
        (count(3), "green", "band-green"),
        (count(2), "stale or failed", "band-other"),
        (overdue, "overdue", "band-red"),
    ];
    html! {
        p.summary #summary {
            @for (i, (n, word, class)) in parts.iter().enumerate() {
                @if i > 0 { span aria-hidden="true" { " · " } }
                span class=(format!("count {class}")) data-count=(word) { strong { (n) } " " (word) }
            }
        }
    }
}

/// `▲ +2 from 10`, the arrow coloured by better or worse (not by up or down).
fn change(t: &Tile) -> Markup {
    let (Some(now), Some(before)) = (t.latest.as_ref().and_then(|l| l.value), t.standing.previous) else {
        return html! {};
    };
    let delta = now - before;
    if delta == 0.0 {
        return html! { p.change data-change="same" { "unchanged" } };
    }
    let worse = if t.higher_is_worse { delta > 0.0 } else { delta < 0.0 };
    let (arrow, class, word) = match delta {
        d if d > 0.0 => ("▲", if worse { "worse" } else { "better" }, "up"),
        _ => ("▼", if worse { "worse" } else { "better" }, "down"),
    };
    let sign = if delta > 0.0 { "+" } else { "" };
    html! {
        p.change data-change=(class) {
            span class=(class) { span aria-hidden="true" { (arrow) " " } (sign) (opt_num(Some(delta))) }
            span.vh { " " (word) ", " (class) }
            " from " (opt_num(Some(before)))
        }
    }
}

/// "red since 3 Dec (2 days)".
fn since(t: &Tile, now: DateTime<Utc>) -> Markup {
    let band = t.latest.as_ref().and_then(|l| l.band.as_deref());
    let (Some(band), Some(at)) = (band, t.standing.band_since) else {
        return html! {};
    };
    let days = (now - at).num_days();
    let long = match days {
        ..1 => "today".to_owned(),
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    };
    html! {
        p.since { (band) " since " time datetime=(crate::format::iso(at)) { (at.format("%-d %b")) } " (" (long) ")" }
    }
}

/// Owner and action of an amber or red KRI; an acknowledgement, with its note; overdue.
fn practice(t: &Tile) -> Markup {
    let breach = matches!(t.latest.as_ref().and_then(|l| l.band.as_deref()), Some("amber" | "red"));
    html! {
        @if t.standing.overdue {
            p.overdue { strong { "Overdue" } ": past its response time, not acknowledged" }
        }
        @if let Some(a) = &t.standing.acknowledged {
            p.acked {
                "Acknowledged"
                @if let Some(by) = &a.by { " by " (by) }
                @if let Some(u) = a.until { " until " (time(u)) }
                ": " span.note-text { (a.note) }
            }
        }
        @if breach {
            @if let Some(o) = &t.owner { p.owner { "Owner: " (o) } }
            @if let Some(a) = &t.action { p.action { "Action: " (action_text(a)) } }
        }
    }
}

/// An action as text, or a link when it is an http(s) URL.
fn action_text(a: &str) -> Markup {
    if a.starts_with("https://") || a.starts_with("http://") {
        html! { a href=(a) rel="noopener noreferrer" { (a) } }
    } else {
        html! { (a) }
    }
}

fn tile(t: &Tile, live: bool, tenant: Option<&str>, now: DateTime<Utc>) -> Markup {
    let band = t.latest.as_ref().and_then(|l| l.band.as_deref()).unwrap_or("none");
    let status = t.latest.as_ref().map_or("none", |l| l.status.as_str());
    html! {
        article.tile #{ "kri-" (t.slug) } data-slug=(t.slug) data-band=(band) data-status=(status)
            data-overdue=(t.standing.overdue) data-stale=(t.standing.stale) {
            h3 {
                @if live {
                    a href={ "kri/" (path_segment(&t.slug)) (tenant_query(tenant)) } { (t.title) }
                } @else {
                    (t.title)
                }
            }
            p.slug { code { (t.slug) } }
            (latest_facts(t))
            (change(t))
            (since(t, now))
            @if t.standing.stale && t.latest.as_ref().is_some_and(|l| l.status != "failed") {
                p.stale { "Stale: no new value for more than two scheduled runs" }
            }
            (practice(t))
            (sparkline(t))
            (thresholds_line(t))
            p.meaning { (t.meaning) }
            p.module { "connector " code { (t.module) } }
        }
    }
}

fn connectors(rows: &[ConnectorRow], actions: &Actions, tenant: Option<&str>) -> Markup {
    let buttons = !matches!(actions, Actions::Static);
    let disabled = matches!(actions, Actions::Disabled(_));
    html! {
        section #connectors aria-labelledby="connectors-h" {
            h2 #connectors-h { "Connectors" }
            @match actions {
                Actions::Enabled => {
                    div.actions {
                        label for="token" { "API token" }
                        input #token type="password" autocomplete="off" spellcheck="false";
                        p.hint { "Needed for Run now and Test; sent with each request, never stored." }
                    }
                    p #action-status role="status" aria-live="polite" {}
                }
                Actions::Disabled(why) => {
                    p.note #actions-note { (why) }
                }
                Actions::Static => {}
            }
            @if rows.is_empty() {
                p { "No connectors are configured." }
            } @else {
                (table_wrap("Connectors table", html! {
                    table.stack {
                        caption { "Connectors, their schedule and their last and next run" }
                        thead {
                            tr {
                                th scope="col" { "Module" }
                                th scope="col" { "Description" }
                                th scope="col" { "Schedule" }
                                th scope="col" { "Last run" }
                                th scope="col" { "Next run" }
                                th scope="col" { "Now" }
                                @if buttons { th scope="col" { "Actions" } }
                            }
                        }
                        tbody {
                            @for r in rows {
                                tr {
                                    th scope="row" data-label="Module" { code { (r.module) } }
                                    td data-label="Description" { (r.description) }
                                    td data-label="Schedule" { (r.schedule) }
                                    td data-label="Last run" {
                                        @match &r.last_run {
                                            Some(l) => {
                                                (time(l.at)) " " (status(&l.status))
                                                @if let Some(e) = &l.error { br; span.error { (e) } }
                                            }
                                            None => { "never" }
                                        }
                                    }
                                    td data-label="Next run" {
                                        @match r.next_run {
                                            Some(t) => { (time(t)) }
                                            None => { (NONE) }
                                        }
                                    }
                                    td data-label="Now" {
                                        @if r.running { (status("running")) } @else { "idle" }
                                    }
                                    @if buttons {
                                        td.buttons data-label="Actions" {
                                            button.run-now type="button" data-module=(r.module)
                                                data-tenant=[tenant] id={ "run-now-" (r.module) } disabled[disabled]
                                                aria-describedby=[disabled.then_some("actions-note")] { "Run now" }
                                            " "
                                            button.test type="button" data-module=(r.module)
                                                data-tenant=[tenant] id={ "test-" (r.module) } disabled[disabled]
                                                aria-describedby=[disabled.then_some("actions-note")] { "Test" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }))
            }
        }
    }
}

fn runs(rows: &[RunRow]) -> Markup {
    html! {
        section #runs aria-labelledby="runs-h" {
            h2 #runs-h { "Recent runs" }
            @if rows.is_empty() {
                p { "No runs yet." }
            } @else {
                (table_wrap("Recent runs table", html! {
                    table.stack {
                        caption { "Recent runs, newest first" }
                        thead {
                            tr {
                                th scope="col" { "Started" }
                                th scope="col" { "Module" }
                                th scope="col" { "Status" }
                                th scope="col" { "Rows written" }
                                th scope="col" { "API calls" }
                                th scope="col" { "Finished" }
                                th scope="col" { "Run id" }
                                th scope="col" { "Error" }
                            }
                        }
                        tbody {
                            @for r in rows {
                                tr {
                                    th scope="row" data-label="Started" { (time_str(&r.started_at)) }
                                    td data-label="Module" { code { (r.module) } }
                                    td data-label="Status" { (status(&r.status)) }
                                    td.num data-label="Rows written" { (r.rows_written) }
                                    td.num data-label="API calls" { (r.api_calls) }
                                    td data-label="Finished" { (time_str(&r.finished_at)) }
                                    td data-label="Run id" { code.id { (r.run_id) } }
                                    td data-label="Error" { @if let Some(e) = &r.error { span.error { (e) } } }
                                }
                            }
                        }
                    }
                }))
            }
        }
    }
}

/// Where events go: per sink, delivered, waiting (since when), dead, and why.
fn sinks(rows: &[SinkRow]) -> Markup {
    html! {
        section #sinks aria-labelledby="sinks-h" {
            h2 #sinks-h { "Notifications" }
            (table_wrap("Notifications table", html! {
                table.stack {
                    caption { "Where events go; `kri sinks retry NAME` sends dead ones again" }
                    thead {
                        tr {
                            th scope="col" { "Sink" }
                            th scope="col" { "Type" }
                            th scope="col" { "Delivered" }
                            th scope="col" { "Waiting" }
                            th scope="col" { "Oldest waiting" }
                            th scope="col" { "Dead" }
                            th scope="col" { "Last error" }
                        }
                    }
                    tbody {
                        @for r in rows {
                            tr {
                                th scope="row" data-label="Sink" { code { (r.name) } }
                                td data-label="Type" { (r.kind) }
                                td.num data-label="Delivered" { (r.delivered) }
                                td.num data-label="Waiting" { (r.waiting) }
                                td data-label="Oldest waiting" { @if let Some(t) = &r.oldest_waiting { (time_str(t)) } }
                                td.num data-label="Dead" { @if r.dead > 0 { span.error { (r.dead) } } @else { (r.dead) } }
                                td data-label="Last error" { @if let Some(e) = &r.last_error { span.error { (e) } } }
                            }
                        }
                    }
                }
            }))
        }
    }
}

fn feed(f: &Feed) -> Markup {
    html! {
        section.feed {
            h3 { (f.title) " " span.module { "(" (f.module) ")" } }
            @if f.items.is_empty() {
                p { "Nothing to show." }
            } @else {
                ul.items {
                    @for i in &f.items {
                        li {
                            p.item-title {
                                strong { (i.title) } " "
                                code { (i.id) }
                                @if let Some(at) = i.at { " · " (time(at)) }
                            }
                            @if !i.fields.is_empty() {
                                dl.fields {
                                    @for (k, v) in &i.fields {
                                        div { dt { (k) } dd { (v) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The full HTML document of one KRI: its facts, a chart of its whole history with the amber and
/// red lines, and its values newest first. Links back to the dashboard with `href="../"`; with a
/// [`KriPage::tenant`], to `../?tenant=NAME`, and also to the overview (`../`).
pub fn kri_page(p: &KriPage) -> String {
    let t = &p.tile;
    let tenant = p.tenant.as_deref();
    let back = format!("../{}", tenant_query(tenant));
    let body = html! {
        header.site {
            p.brand { a href=(back) { "kri" } }
            (tenant_name(tenant))
            (generated(p.generated_at))
            @match tenant {
                None => { nav aria-label="Back" { a href=(back) { "← All KRIs" } } }
                Some(_) => {
                    nav aria-label="Back" {
                        ul {
                            li { a href=(back) { "← All KRIs" } }
                            li { a href="../" { "All tenants" } }
                        }
                    }
                }
            }
        }
        main {
            section.kri aria-labelledby="kri-h"
                data-slug=(t.slug)
                data-band=(t.latest.as_ref().and_then(|l| l.band.as_deref()).unwrap_or("none"))
                data-status=(t.latest.as_ref().map_or("none", |l| l.status.as_str())) {
                h1 #kri-h { (t.title) }
                p.slug { code { (t.slug) } " · connector " code { (t.module) } }
                p.meaning { (t.meaning) }
                div.facts { (latest_facts(t)) (change(t)) (since(t, p.generated_at)) (practice(t)) }
                (thresholds_line(t))
                @if let Some(a) = &p.appetite { p.appetite { "Appetite: " (a) } }
                @if let Some((band, days)) = &p.perpetual {
                    p.note #perpetual {
                        (band) " for " (days) " days: the thresholds may not discriminate; "
                        code { "kri calibrate " (t.slug) } " suggests some from the history"
                    }
                }
                nav.ranges aria-label="Chart range" {
                    "Range: "
                    @for (i, r) in RANGES.iter().enumerate() {
                        @if i > 0 { " · " }
                        @if p.range.as_deref() == Some(*r) {
                            strong aria-current="page" { (r) }
                        } @else {
                            a href={ (path_segment(&t.slug)) "?range=" (r) (tenant_and(tenant)) } { (r) }
                        }
                    }
                }
                figure.chart-box tabindex="0" aria-label="History chart" { (chart(t)) }
            }
            (ack_form(p))
            section #how aria-labelledby="how-h" {
                h2 #how-h { "How it is measured" }
                p { (p.how) }
            }
            section #breaches aria-labelledby="breaches-h" {
                h2 #breaches-h { "Breaches" }
                @if p.breaches.is_empty() {
                    p { "Not amber or red in the values shown." }
                } @else {
                    (table_wrap("Breach log", breach_log(&p.breaches, p.generated_at)))
                }
            }
            section #values aria-labelledby="values-h" {
                h2 #values-h { "Values" }
                @if p.values.is_empty() {
                    p { "No values recorded yet." }
                } @else {
                    (table_wrap("Values table", values_table(t, &p.values, tenant)))
                }
            }
        }
    };
    let title = match tenant {
        Some(name) => format!("{} — {name} — kri", t.title),
        None => format!("{} — kri", t.title),
    };
    document(&title, false, body)
}

/// Acknowledge (or clear) an amber or red KRI from its page: a token-guarded form.
fn ack_form(p: &KriPage) -> Markup {
    let t = &p.tile;
    let breach = matches!(t.latest.as_ref().and_then(|l| l.band.as_deref()), Some("amber" | "red"));
    if !breach {
        return html! {};
    }
    html! {
        section #acknowledge aria-labelledby="ack-h" {
            h2 #ack-h { "Acknowledge" }
            @match &p.actions {
                Actions::Enabled => {
                    form #ack-form data-slug=(t.slug) data-tenant=(p.tenant.as_deref().unwrap_or("")) {
                        div.field { label for="ack-note" { "Why it may stay " (t.latest.as_ref().and_then(|l| l.band.as_deref()).unwrap_or("")) " for now" }
                            input #ack-note type="text" name="note" required maxlength="500" autocomplete="off"; }
                        div.field { label for="ack-until" { "For" }
                            select #ack-until name="until" {
                                option value="" { "until the band changes" }
                                option value="1d" { "1 day" }
                                option value="7d" { "7 days" }
                                option value="30d" { "30 days" }
                            } }
                        div.field { label for="ack-by" { "By" } input #ack-by type="text" name="by" maxlength="80" autocomplete="name"; }
                        div.field { label for="ack-token" { "API token" }
                            input #ack-token type="password" autocomplete="off" spellcheck="false"; }
                        button #ack-submit type="submit" { "Acknowledge" }
                        @if t.standing.acknowledged.is_some() {
                            " " button #ack-clear type="button" { "Clear the acknowledgement" }
                        }
                    }
                    p #ack-status role="status" aria-live="polite" {}
                    script { (PreEscaped(ACK_SCRIPT)) }
                }
                Actions::Disabled(_) => {
                    p.note { "Acknowledging needs [serve] token (or KRI_SERVE__TOKEN); meanwhile "
                        code { "kri ack " (t.slug) " --note TEXT" } " does it." }
                }
                Actions::Static => {}
            }
        }
    }
}

/// The chart ranges offered on a KRI's page.
pub const RANGES: [&str; 4] = ["7d", "30d", "90d", "1y"];

/// `&tenant=NAME` after a first query parameter, or nothing.
fn tenant_and(tenant: Option<&str>) -> String {
    tenant_query(tenant).replacen('?', "&", 1)
}

/// How long from `from` to `to`, in words: `5 h`, `3 days`.
fn lasted(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let hours = (to - from).num_hours();
    match hours {
        ..48 => format!("{} h", hours.max(0)),
        _ => format!("{} days", hours / 24),
    }
}

fn breach_log(rows: &[crate::Breach], now: DateTime<Utc>) -> Markup {
    html! {
        table.stack {
            caption { "Stays in amber or red, newest first" }
            thead {
                tr {
                    th scope="col" { "Band" }
                    th scope="col" { "Entered" }
                    th scope="col" { "Left" }
                    th scope="col" { "For" }
                    th scope="col" { "Acknowledged" }
                }
            }
            tbody {
                @for b in rows {
                    tr {
                        th scope="row" data-label="Band" { (band(&b.band)) }
                        td data-label="Entered" { (time(b.entered)) }
                        td data-label="Left" { @match b.left { Some(l) => { (time(l)) } None => { "still " (b.band) } } }
                        td data-label="For" { (lasted(b.entered, b.left.unwrap_or(now))) }
                        td data-label="Acknowledged" {
                            @match &b.acknowledged {
                                Some(a) => {
                                    @if let Some(by) = &a.by { (by) ": " }
                                    (a.note)
                                }
                                None => { (NONE) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn values_table(t: &Tile, rows: &[ValueRow], tenant: Option<&str>) -> Markup {
    let suffix = unit_suffix(&t.unit);
    html! {
        table.stack {
            caption { "Values of " (t.title) ", newest first" }
            thead {
                tr {
                    th scope="col" { "Measured" }
                    th scope="col" { "Value" @if !suffix.is_empty() { " (" (suffix) ")" } }
                    th scope="col" { "Change" }
                    th scope="col" { "Band" }
                    th scope="col" { "Status" }
                }
            }
            tbody {
                @for r in rows {
                    tr {
                        th scope="row" data-label="Measured" {
                            a.run href={ "../api/v1/runs?run=" (crate::format::query_value(&r.run_id)) (tenant_and(tenant)) }
                                title={ "run " (r.run_id) } { (time_str(&r.measured_at)) }
                        }
                        td.num data-label="Value" { (opt_num(r.value)) }
                        td.num data-label="Change" {
                            @match r.change {
                                Some(c) if c > 0.0 => { "+" (opt_num(Some(c))) }
                                other => { (opt_num(other)) }
                            }
                        }
                        td data-label="Band" { @match &r.band { Some(b) => { (band(b)) } None => { (NONE) } } }
                        td data-label="Status" {
                            (status(&r.status))
                            @if let Some(m) = &r.message { " " span.message { (m) } }
                        }
                    }
                }
            }
        }
    }
}

/// A small self-contained page for errors (404 unknown KRI etc.): the title as heading and the
/// message as a paragraph.
pub fn message_page(title: &str, message: &str) -> String {
    let body = html! {
        header.site { p.brand { "kri" } }
        main {
            section.message aria-labelledby="msg-h" {
                h1 #msg-h { (title) }
                p { (message) }
            }
        }
    };
    document(&format!("{title} — kri"), false, body)
}
