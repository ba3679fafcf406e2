//! The mail for a batch of events: its subject, a text body and an HTML body, its Message-ID
//! and Date. Everything that came from outside (tenant names, titles, owners, actions, incident
//! titles, connector errors) is made visible (no control characters), bounded, and escaped in
//! the HTML.

use std::fmt::Write;
use std::time::SystemTime;

use kri_core::text::{truncate, visible};
use serde_json::Value;

/// Longest subject, in characters.
const MAX_SUBJECT: usize = 200;
/// Longest tenant name in the subject.
const MAX_TENANT: usize = 40;
/// Event ids listed at the foot of the mail.
const MAX_IDS: usize = 20;

/// Text from outside: visible, trimmed, at most `max` characters; `None` when absent or empty.
fn clean(v: &Value, max: usize) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then(|| truncate(&visible(&s), max))
}

/// A KRI value or threshold: `31`, `0.125`; `–` when there is none.
fn number(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
        Some(x) => {
            let rounded = (x * 1000.0).round() / 1000.0;
            if rounded == 0.0 {
                x.to_string()
            } else {
                rounded.to_string()
            }
        }
        None => clean(v, 40).unwrap_or_else(|| "–".into()),
    }
}

/// A band as the event has it, `none` for no band (a first value) or anything unknown.
fn band(v: &Value) -> &'static str {
    match v.as_str() {
        Some("red") => "red",
        Some("amber") => "amber",
        Some("green") => "green",
        _ => "none",
    }
}

fn kind(e: &Value) -> &str {
    e["type"].as_str().unwrap_or_default()
}

/// `n thing`/`n things`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What the batch holds, counted by type: `2 KRIs changed band (1 red), 1 new incident`.
fn counts(events: &[Value]) -> String {
    let n = |t: &str| events.iter().filter(|e| kind(e) == t).count();
    let mut parts = Vec::new();
    let changed = n("kri.band_changed");
    if changed > 0 {
        let red = events
            .iter()
            .filter(|e| kind(e) == "kri.band_changed" && band(&e["kri"]["to"]) == "red")
            .count();
        let mut part = plural(changed, "KRI changed band", "KRIs changed band");
        if red > 0 {
            let _ = write!(part, " ({red} red)");
        }
        parts.push(part);
    }
    let rest: [(&str, &str, &str); 6] = [
        ("kri.failed", "KRI failing", "KRIs failing"),
        ("kri.recovered", "KRI recovered", "KRIs recovered"),
        ("connector.failed", "connector failing", "connectors failing"),
        ("incident.created", "new incident", "new incidents"),
        ("incident.updated", "incident updated", "incidents updated"),
        ("kri.value", "KRI value", "KRI values"),
    ];
    for (t, one, many) in rest {
        let count = n(t);
        if count > 0 {
            parts.push(plural(count, one, many));
        }
    }
    let other = events
        .iter()
        .filter(|e| kind(e) != "kri.band_changed" && !rest.iter().any(|(t, ..)| kind(e) == *t))
        .count();
    if other > 0 {
        parts.push(plural(other, "other event", "other events"));
    }
    if parts.is_empty() {
        return "no events".into();
    }
    parts.join(", ")
}

/// The tenants of the batch: their names when three or fewer, else how many.
fn tenants(events: &[Value]) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for t in events.iter().filter_map(|e| clean(&e["tenant"], MAX_TENANT)) {
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    match seen.len() {
        0 => None,
        1..=3 => Some(seen.join(", ")),
        n => Some(format!("{n} tenants")),
    }
}

/// `acme: 2 KRIs changed band (1 red), 1 new incident`: the subject without its prefix, and
/// the first line of the text body.
pub fn summary(events: &[Value]) -> String {
    match tenants(events) {
        Some(t) => format!("{t}: {}", counts(events)),
        None => counts(events),
    }
}

/// The subject: the prefix and the summary, one line, bounded.
pub fn subject(prefix: &str, events: &[Value]) -> String {
    let s = summary(events);
    let s = if prefix.is_empty() { s } else { format!("{prefix} {s}") };
    truncate(&s, MAX_SUBJECT)
}

/// `<FIRST_EVENT_ID@kri>`: the same for the same batch on every attempt, so a receiver can drop
/// the copy of a batch sent again.
pub fn message_id(events: &[Value]) -> String {
    let usable = |id: &&str| {
        !id.is_empty() && id.len() <= 200 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    };
    match events.first().and_then(|e| e["id"].as_str()).filter(usable) {
        Some(id) => format!("<{id}@kri>"),
        // Events always have an id; should one not, the batch's content names it.
        None => {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in serde_json::to_string(events).unwrap_or_default().bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            format!("<batch-{h:016x}@kri>")
        }
    }
}

/// The first event's time (when its run finished), not the wall clock: the same on every
/// attempt.
pub fn date(events: &[Value]) -> Option<SystemTime> {
    let time = events.first()?["time"].as_str()?;
    chrono::DateTime::parse_from_rfc3339(time).ok().map(SystemTime::from)
}

/// One line of the KRI table.
struct KriRow {
    tenant: String,
    title: String,
    slug: String,
    from: &'static str,
    to: &'static str,
    value: String,
    amber: String,
    red: String,
    owner: Option<String>,
    action: Option<String>,
}

/// One line of the incident table.
struct IncidentRow {
    tenant: String,
    id: String,
    title: String,
    state: String,
    new: bool,
}

enum Row {
    Kri(KriRow),
    Incident(IncidentRow),
    /// Failures, recoveries, anything else: a tenant and a line.
    Other(String, String),
}

fn row(e: &Value) -> Row {
    let tenant = clean(&e["tenant"], MAX_TENANT).unwrap_or_else(|| "–".into());
    let k = &e["kri"];
    let title = clean(&k["title"], 200).unwrap_or_default();
    let slug = clean(&k["slug"], 100).unwrap_or_default();
    match kind(e) {
        "kri.band_changed" | "kri.value" => Row::Kri(KriRow {
            tenant,
            title,
            slug,
            from: band(&k["from"]),
            to: band(&k["to"]),
            value: number(&k["value"]),
            amber: number(&k["amber"]),
            red: number(&k["red"]),
            owner: clean(&k["owner"], 200),
            action: clean(&k["action"], 1000),
        }),
        t @ ("incident.created" | "incident.updated") => {
            let i = &e["incident"];
            Row::Incident(IncidentRow {
                tenant,
                id: clean(&i["display_id"], 60)
                    .or_else(|| clean(&i["id"], 60))
                    .unwrap_or_else(|| "–".into()),
                title: clean(&i["title"], 300).unwrap_or_default(),
                state: clean(&i["state"], 60).unwrap_or_else(|| "–".into()),
                new: t == "incident.created",
            })
        }
        "kri.failed" => Row::Other(tenant, format!("KRI failing: {title} ({slug})")),
        "kri.recovered" => Row::Other(tenant, format!("KRI recovered: {title} ({slug})")),
        "connector.failed" => {
            let c = &e["connector"];
            let module = clean(&c["module"], 60).unwrap_or_else(|| "–".into());
            match clean(&c["error"], 500) {
                Some(error) => Row::Other(tenant, format!("connector {module} failing: {error}")),
                None => Row::Other(tenant, format!("connector {module} failing")),
            }
        }
        other => {
            let what = clean(&Value::from(other), 60).unwrap_or_else(|| "event".into());
            let about = clean(&k["slug"], 100).or_else(|| clean(&e["connector"]["module"], 60));
            Row::Other(tenant, format!("{what}: {}", about.unwrap_or_default()))
        }
    }
}

fn rows(events: &[Value]) -> (Vec<KriRow>, Vec<IncidentRow>, Vec<(String, String)>) {
    let (mut kris, mut incidents, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for e in events {
        match row(e) {
            Row::Kri(r) => kris.push(r),
            Row::Incident(r) => incidents.push(r),
            Row::Other(t, line) => other.push((t, line)),
        }
    }
    (kris, incidents, other)
}

/// The event ids, for whoever traces a mail back to kri: the first [`MAX_IDS`], then how many
/// more.
fn ids(events: &[Value]) -> String {
    let mut ids: Vec<String> = events
        .iter()
        .take(MAX_IDS)
        .map(|e| clean(&e["id"], 60).unwrap_or_else(|| "–".into()))
        .collect();
    if events.len() > MAX_IDS {
        ids.push(format!("and {} more", events.len() - MAX_IDS));
    }
    ids.join(", ")
}

/// The text/plain body.
pub fn text(events: &[Value]) -> String {
    let (kris, incidents, other) = rows(events);
    let mut out = format!("{}\n", summary(events));
    if !kris.is_empty() {
        out.push_str("\nKRIs\n");
        for r in &kris {
            let _ = writeln!(
                out,
                "- {} · {} ({}): {} → {}, value {} (amber {}, red {})",
                r.tenant, r.title, r.slug, r.from, r.to, r.value, r.amber, r.red
            );
            if let Some(o) = &r.owner {
                let _ = writeln!(out, "  owner: {o}");
            }
            if let Some(a) = &r.action {
                let _ = writeln!(out, "  action: {a}");
            }
        }
    }
    if !incidents.is_empty() {
        out.push_str("\nIncidents\n");
        for r in &incidents {
            let _ = writeln!(
                out,
                "- {} · {} {}: {}, state {}",
                r.tenant,
                r.id,
                r.title,
                if r.new { "new" } else { "updated" },
                r.state
            );
        }
    }
    if !other.is_empty() {
        out.push_str("\nOther events\n");
        for (tenant, line) in &other {
            let _ = writeln!(out, "- {tenant} · {line}");
        }
    }
    let _ = write!(out, "\n-- \nSent by kri. Events: {}\n", ids(events));
    out
}

/// HTML-escaped text.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An `http://` or `https://` URL, whole (printable ASCII, nothing cut off): shown as a link.
fn is_link(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty()) && s.chars().all(|c| c.is_ascii_graphic())
}

const TABLE: &str = r#"<table border="1" cellpadding="4" cellspacing="0" style="border-collapse: collapse">"#;

/// The text/html body: the summary, a table of KRIs, a table of incidents, a list of the rest.
pub fn html(events: &[Value]) -> String {
    let (kris, incidents, other) = rows(events);
    let summary = esc(&summary(events));
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{summary}</title></head>\n\
         <body style=\"font-family: sans-serif\">\n<p><b>{summary}</b></p>\n"
    );
    if !kris.is_empty() {
        let _ = writeln!(
            out,
            "<h3>KRIs</h3>\n{TABLE}\n<tr><th>Tenant</th><th>KRI</th><th>Band</th><th>Value</th>\
             <th>Amber / red</th><th>Owner</th><th>Action</th></tr>"
        );
        for r in &kris {
            let action = match &r.action {
                Some(a) if is_link(a) => format!("<a href=\"{0}\">{0}</a>", esc(a)),
                Some(a) => esc(a),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{} ({})</td><td>{} → {}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{action}</td></tr>",
                esc(&r.tenant),
                esc(&r.title),
                esc(&r.slug),
                r.from,
                r.to,
                esc(&r.value),
                esc(&r.amber),
                esc(&r.red),
                esc(r.owner.as_deref().unwrap_or_default()),
            );
        }
        out.push_str("</table>\n");
    }
    if !incidents.is_empty() {
        let _ = writeln!(
            out,
            "<h3>Incidents</h3>\n{TABLE}\n<tr><th>Tenant</th><th>Incident</th><th>Title</th><th>State</th><th></th></tr>"
        );
        for r in &incidents {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.tenant),
                esc(&r.id),
                esc(&r.title),
                esc(&r.state),
                if r.new { "new" } else { "updated" }
            );
        }
        out.push_str("</table>\n");
    }
    if !other.is_empty() {
        out.push_str("<h3>Other events</h3>\n<ul>\n");
        for (tenant, line) in &other {
            let _ = writeln!(out, "<li>{} · {}</li>", esc(tenant), esc(line));
        }
        out.push_str("</ul>\n");
    }
    let _ = write!(
        out,
        "<p style=\"color: #666\">Sent by kri. Events: {}</p>\n</body></html>\n",
        esc(&ids(events))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch() -> Vec<Value> {
        vec![
            json!({"id": "0e7c1d2a-0000-4000-8000-000000000001", "type": "kri.band_changed",
                   "time": "2026-11-23T10:20:00Z", "tenant": "acme", "severity": "critical",
                   "kri": {"slug": "pp_vap_count", "title": "Very Attacked People", "module": "tap",
                           "value": 31.0, "previous_value": 12.0, "from": "amber", "to": "red",
                           "amber": 10.0, "red": 25.0, "direction": "higher", "owner": "SOC lead",
                           "action": "https://wiki.example/vap?x=1&y=2"}}),
            json!({"id": "0e7c1d2a-0000-4000-8000-000000000002", "type": "kri.band_changed",
                   "time": "2026-11-23T10:20:00Z", "tenant": "acme", "severity": "warning",
                   "kri": {"slug": "pp_click_rate", "title": "Click <script>alert(1)</script> rate",
                           "module": "tap", "value": 0.125, "from": null, "to": "amber", "amber": 0.1,
                           "red": 0.2, "owner": null, "action": "call the <b>SOC</b> & escalate"}}),
            json!({"id": "0e7c1d2a-0000-4000-8000-000000000003", "type": "incident.created",
                   "time": "2026-11-23T10:20:00Z", "tenant": "acme", "severity": "critical", "kri": null,
                   "incident": {"id": "5b7a…", "module": "ctr", "display_id": 1234,
                                "title": "Credential phish", "state": "Open"}}),
        ]
    }

    #[test]
    fn the_subject_counts_the_batch_by_type_on_one_bounded_line() {
        assert_eq!(
            subject("[kri]", &batch()),
            "[kri] acme: 2 KRIs changed band (1 red), 1 new incident"
        );
        let many = [
            json!({"type": "kri.failed", "tenant": "acme\r\nBcc: evil@example.com", "kri": {"slug": "x"}}),
            json!({"type": "connector.failed", "tenant": "globex", "connector": {"module": "ctr"}}),
            json!({"type": "kri.recovered", "tenant": "acme\r\nBcc: evil@example.com", "kri": {"slug": "y"}}),
            json!({"type": "something.new", "tenant": "x".repeat(500)}),
        ];
        let s = subject("[kri]", &many);
        assert!(!s.contains(['\r', '\n']), "{s}");
        assert!(s.chars().count() <= MAX_SUBJECT, "{s}");
        assert!(
            s.starts_with("[kri] acme\\r\\nBcc: evil@example.com, globex, xxx"),
            "{s}"
        );
        assert!(
            s.ends_with(": 1 KRI failing, 1 KRI recovered, 1 connector failing, 1 other event"),
            "{s}"
        );
        let four: Vec<Value> = ["a", "b", "c", "d"]
            .iter()
            .map(|t| json!({"type": "kri.value", "tenant": t}))
            .collect();
        assert_eq!(subject("", &four), "4 tenants: 4 KRI values");
    }

    #[test]
    fn the_text_body_has_a_line_per_event_with_owner_and_action() {
        let text = text(&batch());
        assert!(
            text.starts_with("acme: 2 KRIs changed band (1 red), 1 new incident\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "- acme · Very Attacked People (pp_vap_count): amber → red, value 31 (amber 10, red 25)\n  \
                 owner: SOC lead\n  action: https://wiki.example/vap?x=1&y=2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("(pp_click_rate): none → amber, value 0.125 (amber 0.1, red 0.2)\n"),
            "{text}"
        );
        assert!(
            text.contains("- acme · 1234 Credential phish: new, state Open\n"),
            "{text}"
        );
        assert!(
            text.contains("Events: 0e7c1d2a-0000-4000-8000-000000000001, "),
            "{text}"
        );
    }

    #[test]
    fn the_html_body_escapes_what_came_from_outside_and_links_only_urls() {
        let html = html(&batch());
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("Click &lt;script&gt;alert(1)&lt;/script&gt; rate (pp_click_rate)"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"https://wiki.example/vap?x=1&amp;y=2\">https://wiki.example/vap?x=1&amp;y=2</a>"),
            "{html}"
        );
        assert!(
            html.contains("<td>call the &lt;b&gt;SOC&lt;/b&gt; &amp; escalate</td>"),
            "{html}"
        );
        assert_eq!(html.matches("<a ").count(), 1, "only the URL is a link: {html}");
        assert!(
            html.contains("<td>amber → red</td><td>31</td><td>10 / 25</td><td>SOC lead</td>"),
            "{html}"
        );
        assert!(
            html.contains("<td>1234</td><td>Credential phish</td><td>Open</td><td>new</td>"),
            "{html}"
        );
        for (action, link) in [
            ("https://x.example/a b", false),
            ("javascript:alert(1)", false),
            ("http://", false),
            ("HTTPS://X.EXAMPLE/", true),
            ("https://x.example/…", false),
        ] {
            assert_eq!(is_link(action), link, "{action}");
        }
    }

    #[test]
    fn the_same_batch_has_the_same_message_id_and_date() {
        let b = batch();
        assert_eq!(message_id(&b), "<0e7c1d2a-0000-4000-8000-000000000001@kri>");
        assert_eq!(message_id(&b), message_id(&b.clone()));
        assert_ne!(message_id(&b[1..]), message_id(&b));
        let odd = [json!({"id": "a b>", "type": "kri.value"})];
        let id = message_id(&odd);
        assert!(
            id.starts_with("<batch-") && id.ends_with("@kri>") && id == message_id(&odd),
            "{id}"
        );
        assert_eq!(
            date(&b),
            Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_429_200))
        );
        assert_eq!(date(&odd), None);
    }
}
