//! The all-tenants overview: a summary line and one table row per tenant, worst first.
//!
//! Built to stay light with a thousand tenants: plain rows, no chart and no script, and each row
//! holds only its name, its worst band as a word, five counts and one time. The styling of the
//! cells comes from their column (`table.tenants` in `style.css`), not from a class per cell.

use std::cmp::Reverse;

use maud::{Markup, html};

use crate::format::{band_class, query_value, time_ago};
use crate::page::{document, generated, table_wrap};
use crate::{Actions, Overview, TenantBands};

/// The worst band of a tenant as a word: `red`, `amber`, `green`, `no value` (only KRIs without a
/// value) or `none` (no KRIs at all).
fn worst(t: &TenantBands) -> &'static str {
    if t.red > 0 {
        "red"
    } else if t.amber > 0 {
        "amber"
    } else if t.green > 0 {
        "green"
    } else if t.no_value > 0 {
        "no value"
    } else {
        "none"
    }
}

/// The band word with the band's colours, like [`crate::format::band`] but with the swatch drawn
/// by the stylesheet (`table.tenants .band::before`), which keeps a row small.
fn band_word(word: &str) -> Markup {
    html! { span class=(band_class(word)) { (word.to_uppercase()) } }
}

/// `1 tenant`, `3 tenants`.
fn tenants(n: usize) -> String {
    if n == 1 {
        "1 tenant".to_owned()
    } else {
        format!("{n} tenants")
    }
}

/// The full HTML document of the overview: how many tenants have a red KRI, an amber one at worst,
/// a failed connector; then a table of all tenants sorted worst first (red count, then amber,
/// then failed connectors, all descending, then name), each linking to its dashboard
/// `./?tenant=NAME`.
///
/// A live page ([`Actions::Enabled`] or [`Actions::Disabled`]: the overview has no buttons either
/// way) reloads every 60 s. [`Actions::Static`] has no reload and no links to tenant pages, which
/// a static file does not have.
pub fn overview_page(o: &Overview) -> String {
    let live = !matches!(o.actions, Actions::Static);
    let mut rows: Vec<&TenantBands> = o.tenants.iter().collect();
    rows.sort_by_key(|&t| (Reverse(t.red), Reverse(t.amber), Reverse(t.failed_connectors), &t.name));
    let red = rows.iter().filter(|t| t.red > 0).count();
    let amber = rows.iter().filter(|t| t.red == 0 && t.amber > 0).count();
    let failed = rows.iter().filter(|t| t.failed_connectors > 0).count();
    let body = html! {
        header.site {
            p.brand { "kri" }
            (generated(o.generated_at))
        }
        main {
            section #tenants aria-labelledby="tenants-h" {
                h1 #tenants-h { "All tenants" }
                @if rows.is_empty() {
                    p { "No tenants are configured." }
                } @else {
                    p.summary {
                        strong { (tenants(rows.len())) } ": "
                        strong { (red) } " with a red KRI, "
                        strong { (amber) } " with amber as the worst band, "
                        strong { (failed) } " with a failed connector."
                    }
                    @if !o.kris.is_empty() { (matrix(o, &rows, live)) }
                    (table_wrap("Tenants table", html! {
                        table.tenants {
                            caption { "Tenants, worst first: most red KRIs, then amber, then failed connectors" }
                            thead {
                                tr {
                                    th scope="col" { "Tenant" }
                                    th scope="col" { "Worst band" }
                                    th scope="col" { "Red" }
                                    th scope="col" { "Amber" }
                                    th scope="col" { "Green" }
                                    th scope="col" { "No value" }
                                    th scope="col" { "Failed connectors" }
                                    th scope="col" { "Last run" }
                                }
                            }
                            tbody {
                                @for t in &rows {
                                    tr {
                                        th scope="row" {
                                            @if live {
                                                a href={ "./?tenant=" (query_value(&t.name)) } { (t.name) }
                                            } @else {
                                                (t.name)
                                            }
                                        }
                                        td { (band_word(worst(t))) }
                                        td { (t.red) }
                                        td { (t.amber) }
                                        td { (t.green) }
                                        td { (t.no_value) }
                                        td { (t.failed_connectors) }
                                        td {
                                            @match t.last_run {
                                                Some(at) => { (time_ago(at, o.generated_at)) }
                                                None => { "never" }
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
    };
    document("kri — All tenants", live, body)
}

/// The matrix shows at most this many tenants (the worst): a page stays light with a thousand.
pub const MATRIX_ROWS: usize = 100;

/// Tenants × KRIs: each cell the band's colour and letter (R, A, G, – for no value), a link to
/// that tenant's KRI page; worst tenants first.
fn matrix(o: &Overview, rows: &[&TenantBands], live: bool) -> Markup {
    let shown = &rows[..rows.len().min(MATRIX_ROWS)];
    html! {
        section #matrix aria-labelledby="matrix-h" {
            h2 #matrix-h { "Tenants × KRIs" }
            @if shown.len() < rows.len() {
                p.hint { "The " (shown.len()) " worst of " (rows.len()) " tenants; the table below lists them all." }
            }
            (table_wrap("Tenants by KRI", html! {
                table.matrix {
                    caption { "Band of each KRI per tenant, worst tenants first: R red, A amber, G green, – no value" }
                    thead {
                        tr {
                            th scope="col" { "Tenant" }
                            @for (slug, title) in &o.kris {
                                th scope="col" { abbr title=(title) { (slug) } }
                            }
                        }
                    }
                    tbody {
                        @for t in shown {
                            tr {
                                th.tn scope="row" { (t.name) }
                                @for (i, (slug, _)) in o.kris.iter().enumerate() {
                                    @let band = t.cells.get(i).cloned().flatten();
                                    @let word = band.as_deref().unwrap_or("no value");
                                    @let letter = match word { "red" => "R", "amber" => "A", "green" => "G", _ => "–" };
                                    // Kept small (a hundred rows of a dozen cells): the column's
                                    // header names the KRI, the caption the letters.
                                    td class=(band_class(word).trim_start_matches("band ")) {
                                        @if live {
                                            a href={ "kri/" (crate::format::path_segment(slug)) "?tenant=" (query_value(&t.name)) } { (letter) }
                                        } @else {
                                            (letter)
                                        }
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
