//! `kri report --html`: an executive page for one period, not a copy of the live dashboard:
//! where the KRIs stand, what changed against the start of the period (band changes, the
//! biggest moves), the breaches now with who owns them and what is being done, and each KRI's
//! trend over the period. No live-only column, no script, no link out; it prints on A4.

use chrono::{DateTime, Utc};
use maud::html;

use crate::chart::sparkline_over;
use crate::format::{NONE, band, opt_num, time, unit_suffix};
use crate::page::{document, summary, worst_first};
use crate::{Tile, format};

/// What the report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub generated_at: DateTime<Utc>,
    /// The period, as asked (`7d`), and when it starts.
    pub period: String,
    pub since: DateTime<Utc>,
    /// `Some(name)`: one tenant of many.
    pub tenant: Option<String>,
    /// One per KRI, `history` covering the period.
    pub kris: Vec<ReportKri>,
}

/// One KRI in the report: its tile, and where it stood when the period began.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportKri {
    pub tile: Tile,
    /// Its first value in the period, and that value's band.
    pub start: Option<(f64, Option<String>)>,
}

impl ReportKri {
    fn band_now(&self) -> Option<&str> {
        self.tile.latest.as_ref().and_then(|l| l.band.as_deref())
    }

    fn value_now(&self) -> Option<f64> {
        self.tile.latest.as_ref().and_then(|l| l.value)
    }

    /// The move over the period, relative to where it started (`None` from a zero start).
    fn relative_move(&self) -> Option<f64> {
        let ((start, _), now) = (self.start.as_ref()?, self.value_now()?);
        (start.abs() > f64::EPSILON).then(|| (now - start) / start.abs())
    }

    /// Worse (`true`) or better over the period, for its direction; `None`: unchanged.
    fn worse(&self) -> Option<bool> {
        let ((start, _), now) = (self.start.as_ref()?, self.value_now()?);
        let d = now - start;
        (d != 0.0).then_some(if self.tile.higher_is_worse { d > 0.0 } else { d < 0.0 })
    }
}

/// How many moves "biggest moves" lists.
const MOVES: usize = 5;

/// The report as one self-contained HTML document.
pub fn report_page(r: &Report) -> String {
    let tiles: Vec<Tile> = r.kris.iter().map(|k| k.tile.clone()).collect();
    let by_slug = |slug: &str| r.kris.iter().find(|k| k.tile.slug == slug);
    let changed: Vec<&ReportKri> = r
        .kris
        .iter()
        .filter(|k| k.start.as_ref().is_some_and(|(_, b)| b.as_deref() != k.band_now()) && k.band_now().is_some())
        .collect();
    let mut moves: Vec<(&ReportKri, f64)> = r
        .kris
        .iter()
        .filter_map(|k| Some((k, k.relative_move()?)))
        .filter(|(_, m)| *m != 0.0)
        .collect();
    moves.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    moves.truncate(MOVES);
    let breaches: Vec<&Tile> = worst_first(&tiles)
        .into_iter()
        .filter(|t| matches!(t.latest.as_ref().and_then(|l| l.band.as_deref()), Some("amber" | "red")))
        .collect();
    let body = html! {
        header.site {
            h1 { "KRI report" }
            @if let Some(t) = &r.tenant { p.tenant { "Tenant " strong { (t) } } }
            p.generated {
                "The last " (r.period) ": " (time(r.since)) " to " (time(r.generated_at))
            }
        }
        main.report {
            section #summary-s aria-labelledby="summary-h" {
                h2 #summary-h { "Where the KRIs stand" }
                (summary(&tiles))
            }
            section #changes aria-labelledby="changes-h" {
                h2 #changes-h { "What changed" }
                @if changed.is_empty() {
                    p { "No KRI changed band over the period." }
                } @else {
                    ul.changes {
                        @for k in &changed {
                            li {
                                strong { (k.tile.title) } " "
                                @match k.start.as_ref().and_then(|(_, b)| b.as_deref()) {
                                    Some(b) => { (band(b)) }
                                    None => { "no band" }
                                }
                                " → " (band(k.band_now().unwrap_or("none")))
                            }
                        }
                    }
                }
                h3 { "Biggest moves" }
                @if moves.is_empty() {
                    p { "No KRI moved over the period." }
                } @else {
                    table.stack {
                        caption { "The largest changes since the start of the period, relative to where they started" }
                        thead { tr { th scope="col" { "KRI" } th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "Move" } } }
                        tbody {
                            @for (k, m) in &moves {
                                @let suffix = unit_suffix(&k.tile.unit);
                                tr {
                                    th scope="row" data-label="KRI" { (k.tile.title) }
                                    td.num data-label="From" { (opt_num(k.start.as_ref().map(|s| s.0))) (suffix) }
                                    td.num data-label="To" { (opt_num(k.value_now())) (suffix) }
                                    td.num data-label="Move" {
                                        span class=(if k.worse() == Some(true) { "worse" } else { "better" }) {
                                            (if *m > 0.0 { "+" } else { "" }) (format!("{:.1}", m * 100.0)) " %"
                                        }
                                        span.vh { @if k.worse() == Some(true) { " worse" } @else { " better" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section #breaches-now aria-labelledby="breaches-h" {
                h2 #breaches-h { "Breaches now" }
                @if breaches.is_empty() {
                    p { "No KRI is amber or red." }
                } @else {
                    table.stack {
                        caption { "KRIs in amber or red, worst first" }
                        thead {
                            tr {
                                th scope="col" { "KRI" } th scope="col" { "Band" } th scope="col" { "Since" }
                                th scope="col" { "Owner" } th scope="col" { "Action" } th scope="col" { "Acknowledged" }
                                th scope="col" { "Overdue" }
                            }
                        }
                        tbody {
                            @for t in &breaches {
                                tr {
                                    th scope="row" data-label="KRI" { (t.title) }
                                    td data-label="Band" { (band(t.latest.as_ref().and_then(|l| l.band.as_deref()).unwrap_or("none"))) }
                                    td data-label="Since" {
                                        @match t.standing.band_since {
                                            Some(s) => { time datetime=(format::iso(s)) { (s.format("%-d %b %Y")) } }
                                            None => { (NONE) }
                                        }
                                    }
                                    td data-label="Owner" { (t.owner.as_deref().unwrap_or(NONE)) }
                                    td data-label="Action" { (t.action.as_deref().unwrap_or(NONE)) }
                                    td data-label="Acknowledged" {
                                        @match &t.standing.acknowledged {
                                            Some(a) => { @if let Some(by) = &a.by { (by) ": " } (a.note) }
                                            None => { "no" }
                                        }
                                    }
                                    td data-label="Overdue" { @if t.standing.overdue { strong.overdue { "overdue" } } @else { "no" } }
                                }
                            }
                        }
                    }
                }
            }
            section #trends aria-labelledby="trends-h" {
                h2 #trends-h { "Trends over the period" }
                div.tiles {
                    @for t in worst_first(&tiles) {
                        @let k = by_slug(&t.slug);
                        article.tile data-slug=(t.slug) data-band=(t.latest.as_ref().and_then(|l| l.band.as_deref()).unwrap_or("none")) {
                            h3 { (t.title) }
                            p.slug { code { (t.slug) } }
                            p.value { (opt_num(t.latest.as_ref().and_then(|l| l.value))) span.unit { (unit_suffix(&t.unit)) } }
                            @if let Some((start, _)) = k.and_then(|k| k.start.as_ref()) {
                                p.change { "from " (opt_num(Some(*start))) " at the start of the period" }
                            }
                            (sparkline_over(t, &format!("over the last {}", r.period)))
                        }
                    }
                }
            }
        }
    };
    let title = match &r.tenant {
        Some(t) => format!("KRI report, {t}, the last {}", r.period),
        None => format!("KRI report, the last {}", r.period),
    };
    document(&title, false, body)
}
