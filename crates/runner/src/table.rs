//! A plain terminal table, like `kubectl get`: a header, a `─` rule, then rows, columns two
//! spaces apart and no borders, so it reads easily and greps well. Widths are display widths, so
//! `é` or `—` counts one column and a CJK character two. When the table is wider than the
//! terminal, free-text columns (`Fit::Wrap`) first wrap at spaces, widest first, down to their
//! minimum; then droppable columns go, lowest `drop_priority` first (rightmost on a tie), and a
//! last line names them. `Fit::Whole` values (slugs, ids, times, numbers) are never split,
//! shortened or given an ellipsis. When even the never-dropped columns cannot fit, each row
//! becomes a block of `HEADER  value` lines showing every column. Colour is ANSI SGR, only when
//! asked for, and never counts toward a width; without it no escape byte is written.

// `unicode-width`: the display width of text, so wide and combining characters line up.
use unicode_width::UnicodeWidthStr;

const MIN_WIDTH: usize = 20;
const PIPED_WIDTH: usize = 100;
const GAP: &str = "  ";

/// How wide to draw: `COLUMNS` when it is a positive integer, else the terminal's width when
/// stdout is a terminal with a non-zero size, else 100 (piped output). Never below 20.
pub fn width() -> usize {
    width_from(std::env::var("COLUMNS").ok().as_deref(), tty_cols())
}

/// [`width`] from its inputs: the `COLUMNS` value and the terminal's column count.
pub fn width_from(columns_env: Option<&str>, tty_cols: Option<u16>) -> usize {
    let from_env = columns_env
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0);
    let from_tty = tty_cols.filter(|&n| n > 0).map(usize::from);
    from_env.or(from_tty).unwrap_or(PIPED_WIDTH).max(MIN_WIDTH)
}

/// The column count of the terminal on stdout; `None` when stdout is not a terminal.
#[cfg(unix)]
fn tty_cols() -> Option<u16> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct it is given, which outlives the call.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (rc == 0).then_some(size.ws_col)
}

#[cfg(not(unix))]
fn tty_cols() -> Option<u16> {
    None
}

/// Whether to colour: stdout is a terminal, NO_COLOR is unset or empty, TERM is not "dumb".
pub fn colour() -> bool {
    use std::io::IsTerminal;
    let var = |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    colour_from(
        std::io::stdout().is_terminal(),
        var("NO_COLOR").as_deref(),
        var("TERM").as_deref(),
    )
}

/// [`colour`] from its inputs.
pub fn colour_from(is_tty: bool, no_color: Option<&str>, term: Option<&str>) -> bool {
    is_tty && no_color.is_none_or(str::is_empty) && term != Some("dumb")
}

/// How a column gives way when the table is too wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Never broken or shortened (slugs, ids, times, numbers, module keys): shown whole or the column is dropped.
    Whole,
    /// Free text (MEANING, MESSAGE, ERROR, DESCRIPTION): may wrap at spaces (or hard-wrap a very long word) down to `min` columns.
    Wrap { min: usize },
}

/// One column of a table.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its title: a `&'static str`, or text made at run time (a connector's table).
    pub header: std::borrow::Cow<'static, str>,
    pub fit: Fit,
    /// Lower drops first when the table does not fit; 0 = never dropped.
    pub drop_priority: u8,
    /// Right-align (numbers).
    pub right: bool,
}

/// A cell: its text and how to colour it on a terminal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

/// The colour of a cell on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tone {
    #[default]
    Plain,
    Green,
    Amber,
    Red,
    Dim,
}

impl Tone {
    fn sgr(self) -> Option<&'static str> {
        match self {
            Tone::Plain => None,
            Tone::Green => Some("32"),
            Tone::Amber => Some("33"),
            Tone::Red => Some("31"),
            Tone::Dim => Some("2"),
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell {
            text,
            tone: Tone::Plain,
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::from(text.to_owned())
    }
}

impl Cell {
    /// A cell drawn in `tone` on a terminal.
    pub fn toned(text: impl Into<String>, tone: Tone) -> Self {
        Cell {
            text: text.into(),
            tone,
        }
    }
}

/// Tone for a band word: "green"/"amber"/"red" → Green/Amber/Red, else Plain.
pub fn band_tone(band: &str) -> Tone {
    match band.to_ascii_lowercase().as_str() {
        "green" => Tone::Green,
        "amber" => Tone::Amber,
        "red" => Tone::Red,
        _ => Tone::Plain,
    }
}

/// Tone for a status: "failed" → Red, "unlicensed" and "partial" → Amber, else Plain.
pub fn status_tone(status: &str) -> Tone {
    match status.to_ascii_lowercase().as_str() {
        "failed" => Tone::Red,
        "unlicensed" | "partial" => Tone::Amber,
        _ => Tone::Plain,
    }
}

/// Renders the table: lines joined with '\n', no trailing newline, at most `width` display
/// columns per line (a `width` below 20 counts as 20). Missing cells are empty, extra cells are
/// ignored, and control characters (newlines, tabs) become spaces. No columns give an empty
/// string; no rows give the header and rule alone (nothing in the record layout). The one line
/// that may exceed `width` is a record-layout `Fit::Whole` value longer than the width: it
/// cannot be split without breaking it.
pub fn render(columns: &[Column], rows: &[Vec<Cell>], width: usize, colour: bool) -> String {
    let width = width.max(MIN_WIDTH);
    let grid: Vec<Vec<Cell>> = rows
        .iter()
        .map(|row| {
            let cell = |i| {
                row.get(i)
                    .map(|c: &Cell| Cell::toned(clean(&c.text), c.tone))
                    .unwrap_or_default()
            };
            (0..columns.len()).map(cell).collect()
        })
        .collect();
    let natural: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, col)| {
            grid.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.text.width())
                .fold(col.header.width(), usize::max)
        })
        .collect();
    // `None` marks a dropped column.
    let mut widths: Vec<Option<usize>> = natural.iter().copied().map(Some).collect();
    let lines = loop {
        if columns.is_empty() {
            break Vec::new();
        }
        if shrink(columns, &natural, &mut widths, width) {
            break table(columns, &grid, &widths, width, colour);
        }
        let victim = (columns.iter().zip(&widths).enumerate())
            .filter(|(_, (col, w))| col.drop_priority > 0 && w.is_some())
            .min_by_key(|(i, (col, _))| (col.drop_priority, std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        match victim.and_then(|i| widths.get_mut(i)) {
            Some(w) => *w = None,
            None => break records(columns, &grid, width, colour),
        }
    };
    lines.join("\n")
}

/// Sets the shown columns to their natural widths, then narrows the widest `Wrap` column one
/// step at a time, never below its `min` or its header, until the line fits. False if it cannot.
fn shrink(columns: &[Column], natural: &[usize], widths: &mut [Option<usize>], width: usize) -> bool {
    for (w, &n) in widths.iter_mut().zip(natural) {
        if let Some(w) = w {
            *w = n;
        }
    }
    loop {
        let shown: Vec<usize> = widths.iter().flatten().copied().collect();
        let total = shown.iter().sum::<usize>() + GAP.len() * shown.len().saturating_sub(1);
        if total <= width {
            return true;
        }
        let widest = (widths.iter_mut().zip(columns))
            .filter_map(|(w, col)| match (w, col.fit) {
                (Some(w), Fit::Wrap { min }) if *w > min.max(col.header.width()) => Some(w),
                _ => None,
            })
            .max_by_key(|w| **w);
        match widest {
            Some(w) => *w -= 1,
            None => return false,
        }
    }
}

/// The table layout with the shown columns at their given widths, and the note on hidden ones.
fn table(columns: &[Column], grid: &[Vec<Cell>], widths: &[Option<usize>], width: usize, colour: bool) -> Vec<String> {
    let shown: Vec<(usize, &Column, usize)> = (columns.iter().zip(widths).enumerate())
        .filter_map(|(i, (col, w))| w.map(|w| (i, col, w)))
        .collect();
    let join = |cells: Vec<String>| cells.join(GAP).trim_end_matches(' ').to_owned();
    let header = join(
        shown
            .iter()
            .map(|&(_, col, w)| pad(&col.header, w, col.right, Tone::Plain, false))
            .collect(),
    );
    let rule = join(shown.iter().map(|&(_, _, w)| "─".repeat(w)).collect());
    let mut lines = vec![paint(&header, Some("1"), colour), paint(&rule, Tone::Dim.sgr(), colour)];
    for row in grid {
        let parts: Vec<Vec<String>> = (shown.iter())
            .map(|&(i, col, w)| lines_of(row.get(i).map_or("", |c| c.text.as_str()), col.fit, w))
            .collect();
        let height = parts.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height.max(1) {
            let cells = (shown.iter().zip(&parts)).map(|(&(i, col, w), part)| {
                let tone = row.get(i).map_or(Tone::Plain, |c| c.tone);
                pad(part.get(k).map_or("", String::as_str), w, col.right, tone, colour)
            });
            lines.push(join(cells.collect()));
        }
    }
    let hidden: Vec<&str> = (columns.iter().zip(widths))
        .filter(|(_, w)| w.is_none())
        .map(|(c, _)| c.header.as_ref())
        .collect();
    if !hidden.is_empty() {
        let note = format!(
            "(hidden: {} — widen the terminal or use --output json)",
            hidden.join(", ")
        );
        lines.extend(wrap(&note, width).iter().map(|l| paint(l, Tone::Dim.sgr(), colour)));
    }
    lines
}

/// The record layout: per row, the first column's value, then `  HEADER  value` for every other
/// non-empty cell; blocks separated by a blank line.
fn records(columns: &[Column], grid: &[Vec<Cell>], width: usize, colour: bool) -> Vec<String> {
    let label_width = columns.iter().skip(1).map(|c| c.header.width()).max().unwrap_or(0);
    let indent = 2 + label_width + 2;
    let value_width = width.saturating_sub(indent).max(1);
    let mut lines = Vec::new();
    for (n, row) in grid.iter().enumerate() {
        if n > 0 {
            lines.push(String::new());
        }
        if let (Some(col), Some(cell)) = (columns.first(), row.first()) {
            lines.extend(
                lines_of(&cell.text, col.fit, width)
                    .iter()
                    .map(|t| paint(t, Some("1"), colour)),
            );
        }
        for (col, cell) in columns
            .iter()
            .zip(row)
            .skip(1)
            .filter(|(_, c)| !c.text.trim().is_empty())
        {
            for (k, value) in lines_of(&cell.text, col.fit, value_width).iter().enumerate() {
                let label = if k == 0 { col.header.as_ref() } else { "" };
                let line = format!(
                    "  {}  {}",
                    pad(label, label_width, false, Tone::Plain, false),
                    paint(value, cell.tone.sgr(), colour)
                );
                lines.push(line.trim_end_matches(' ').to_owned());
            }
        }
    }
    lines
}

/// `text` padded to `width` display columns; only the text itself is coloured.
fn pad(text: &str, width: usize, right: bool, tone: Tone, colour: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(text.width()));
    let text = paint(text, tone.sgr(), colour);
    if right { fill + &text } else { text + &fill }
}

/// `text` in the SGR `code` when colouring, else unchanged.
fn paint(text: &str, code: Option<&str>, colour: bool) -> String {
    match code {
        Some(code) if colour && !text.is_empty() => format!("\x1b[{code}m{text}\x1b[0m"),
        _ => text.to_owned(),
    }
}

/// Newlines, tabs and other control characters (an escape byte among them) become spaces.
fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A cell's lines at `width`: a `Whole` value, or text that fits, stays on one line.
fn lines_of(text: &str, fit: Fit, width: usize) -> Vec<String> {
    match fit {
        Fit::Wrap { .. } if text.width() > width => wrap(text, width),
        _ => vec![text.to_owned()],
    }
}

/// Greedy wrap at spaces into lines of at most `limit` display columns; a word longer than
/// `limit` is split between characters. Always at least one line.
fn wrap(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !line.is_empty() && line.width() + 1 + word.width() <= limit {
            line.push(' ');
            line.push_str(word);
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for c in word.chars() {
            line.push(c);
            // A character wider than `limit` still takes a line of its own rather than looping.
            if line.width() > limit && line.chars().nth(1).is_some() {
                line.pop();
                lines.push(std::mem::replace(&mut line, c.to_string()));
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Display width of a line with its ANSI SGR sequences removed.
    fn visible_width(line: &str) -> usize {
        let mut plain = String::new();
        let mut rest = line;
        while let Some(start) = rest.find('\x1b') {
            plain.push_str(&rest[..start]);
            rest = rest[start..].split_once('m').map_or("", |(_, after)| after);
        }
        plain.push_str(rest);
        plain.width()
    }

    fn col(header: &'static str, fit: Fit, drop_priority: u8, right: bool) -> Column {
        Column {
            header: header.into(),
            fit,
            drop_priority,
            right,
        }
    }

    fn kri_columns() -> Vec<Column> {
        vec![
            col("MODULE", Fit::Whole, 0, false),
            col("KRI", Fit::Whole, 0, false),
            col("VALUE", Fit::Whole, 0, true),
            col("UNIT", Fit::Whole, 3, false),
            col("STATUS", Fit::Whole, 0, false),
            col("BAND", Fit::Whole, 0, false),
            col("MEANING", Fit::Wrap { min: 16 }, 1, false),
            col("MESSAGE", Fit::Wrap { min: 20 }, 2, false),
        ]
    }

    /// MODULE | KRI | VALUE | UNIT | STATUS | BAND | MEANING | MESSAGE, with STATUS and BAND toned.
    const ROWS: [&str; 3] = [
        "tap|pp_reported_phish_fn_rate_pct|12.50|%|ok|amber|Share of reported phish that the gateway let through|",
        "tap|pp_clicks_permitted_total|3|count|partial|green|Clicks on URLs that were allowed|\
         1 of 4 windows unread: upstream sent 503 Service Unavailable after 3 retries",
        "efd|efd_dmarc_reject_domains_pct|—|%|failed|—|Domains whose DMARC policy is p=reject|\
         unlicensed: the account has no Email Fraud Defense licence (HTTP 403)",
    ];

    fn kri_rows() -> Vec<Vec<Cell>> {
        let cell = |(i, text): (usize, &str)| match i {
            4 => Cell::toned(text, status_tone(text)),
            5 => Cell::toned(text, band_tone(text)),
            _ => Cell::from(text),
        };
        ROWS.iter()
            .map(|row| row.split('|').enumerate().map(cell).collect())
            .collect()
    }

    fn slugs() -> impl Iterator<Item = &'static str> {
        ROWS.iter().filter_map(|row| row.split('|').nth(1))
    }

    fn assert_fits(out: &str, width: usize) {
        for line in out.lines() {
            assert!(visible_width(line) <= width, "line wider than {width}: {line:?}");
        }
    }

    #[test]
    fn width_from_env_then_tty_then_default() {
        assert_eq!(width_from(Some("80"), Some(120)), 80);
        for bad in ["0", "abc", ""] {
            assert_eq!(width_from(Some(bad), Some(132)), 132);
            assert_eq!(width_from(Some(bad), None), 100);
        }
        assert_eq!(width_from(None, Some(0)), 100);
        assert_eq!(width_from(None, None), 100);
        assert_eq!(width_from(Some("10"), None), 20);
        assert_eq!(width_from(None, Some(5)), 20);
    }

    #[test]
    fn colour_from_tty_no_color_and_term() {
        assert!(colour_from(true, None, Some("xterm-256color")));
        assert!(!colour_from(true, Some("1"), None));
        assert!(colour_from(true, Some(""), None));
        assert!(!colour_from(false, None, None));
        assert!(!colour_from(true, None, Some("dumb")));
    }

    #[test]
    fn tones_for_bands_and_statuses() {
        assert_eq!(band_tone("amber"), Tone::Amber);
        assert_eq!(band_tone("—"), Tone::Plain);
        assert_eq!(status_tone("failed"), Tone::Red);
        assert_eq!(status_tone("unlicensed"), Tone::Amber);
        assert_eq!(status_tone("ok"), Tone::Plain);
    }

    #[test]
    fn wide_terminal_shows_everything_on_one_line_per_row() {
        let out = render(&kri_columns(), &kri_rows(), 200, false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2 + 3, "{out}");
        assert!(
            lines[0].starts_with("MODULE  KRI") && lines[0].ends_with("MESSAGE"),
            "{out}"
        );
        assert!(lines[1].starts_with("──────  ───"));
        assert!(!out.contains("hidden"));
        assert!(out.contains("after 3 retries") && out.contains("12.50"));
        // VALUE is right-aligned under its header.
        let value_end = lines[0].find("VALUE").map(|i| i + "VALUE".len());
        assert_eq!(lines[2].find("12.50").map(|i| i + "12.50".len()), value_end, "{out}");
    }

    #[test]
    fn at_80_free_text_gives_way_and_whole_values_stay_whole() {
        let out = render(&kri_columns(), &kri_rows(), 80, false);
        assert_fits(&out, 80);
        let lines: Vec<&str> = out.lines().collect();
        for slug in slugs() {
            assert!(lines.iter().any(|l| l.contains(slug)), "{slug} split:\n{out}");
        }
        let header = lines.first().copied().unwrap_or_default();
        for kept in ["MODULE", "KRI", "VALUE", "UNIT", "STATUS", "BAND"] {
            assert!(header.contains(kept), "{kept} missing:\n{out}");
        }
        // Free text wrapped or went first: either more lines than rows, or a hidden note.
        assert!(lines.len() > 5 || out.contains("(hidden: "), "{out}");
        assert!(out.contains("partial") && out.contains("failed") && out.contains("amber"));
    }

    #[test]
    fn hidden_note_appears_exactly_when_columns_were_dropped() {
        let cols = kri_columns();
        let rows = kri_rows();
        assert!(!render(&cols, &rows, 200, false).contains("hidden"));
        let out = render(&cols, &rows, 90, false);
        let dropped: Vec<&str> = cols
            .iter()
            .map(|c| c.header.as_ref())
            .filter(|h| !out.lines().next().unwrap_or("").contains(h))
            .collect();
        assert!(!dropped.is_empty(), "{out}");
        let note = format!(
            "(hidden: {} — widen the terminal or use --output json)",
            dropped.join(", ")
        );
        assert_eq!(out.lines().last(), Some(note.as_str()), "{out}");
        assert_fits(&out, 90);
        // MEANING (priority 1) drops before MESSAGE (priority 2), which wraps instead.
        assert_eq!(dropped, ["MEANING"], "{out}");
        assert!(out.lines().count() > 2 + 3 + 1, "{out}");
    }

    #[test]
    fn narrow_terminal_switches_to_records_with_all_columns() {
        let out = render(&kri_columns(), &kri_rows(), 40, false);
        assert_fits(&out, 40);
        assert!(!out.contains('─') && !out.contains("hidden"), "{out}");
        for slug in slugs() {
            assert!(out.lines().any(|l| l == format!("  KRI      {slug}")), "{slug}:\n{out}");
        }
        let blocks: Vec<&str> = out.split("\n\n").collect();
        assert_eq!(blocks.len(), 3, "{out}");
        assert!(blocks.iter().all(|b| b.starts_with("tap\n") || b.starts_with("efd\n")));
        assert!(
            out.contains("  MEANING  Share of reported") && out.contains("  UNIT     count"),
            "{out}"
        );
        // The first row has no message, so no MESSAGE line.
        assert!(blocks.first().is_some_and(|b| !b.contains("MESSAGE")));
    }

    #[test]
    fn record_layout_only_overflows_for_a_whole_value_longer_than_the_width() {
        let cols = [col("ID", Fit::Whole, 0, false), col("TRACE", Fit::Whole, 0, false)];
        let trace = "x".repeat(30);
        let out = render(&cols, &[vec!["a".into(), trace.as_str().into()]], 20, false);
        assert_eq!(out, format!("a\n  TRACE  {trace}"));
    }

    #[test]
    fn times_and_uuids_are_never_split() {
        let cols = [
            col("ID", Fit::Whole, 0, false),
            col("STARTED", Fit::Whole, 0, false),
            col("ERROR", Fit::Wrap { min: 10 }, 1, false),
        ];
        let id = "0b8f6c3e-6a4f-4d0e-9c8a-2f1e3d4c5b6a";
        let time = "2026-11-23T10:20:00Z";
        let rows = vec![vec![
            id.into(),
            time.into(),
            "the upstream closed the connection before the body ended".into(),
        ]];
        for width in [20, 40, 60, 70, 80, 120] {
            let out = render(&cols, &rows, width, false);
            assert!(
                out.lines().any(|l| l.contains(id)) && out.lines().any(|l| l.contains(time)),
                "{width}:\n{out}"
            );
        }
        let out = render(&cols, &rows, 70, false);
        assert_fits(&out, 70);
        assert!(out.lines().count() > 3, "ERROR wraps at 70:\n{out}");
    }

    #[test]
    fn colour_only_when_asked_and_never_counted_in_widths() {
        let plain = render(&kri_columns(), &kri_rows(), 80, false);
        assert!(!plain.as_bytes().contains(&0x1b));
        let coloured = render(&kri_columns(), &kri_rows(), 80, true);
        assert!(coloured.contains("\x1b[33mamber\x1b[0m") && coloured.contains("\x1b[31mfailed\x1b[0m"));
        assert!(coloured.starts_with("\x1b[1mMODULE"));
        assert_fits(&coloured, 80);
        let visible: Vec<usize> = coloured.lines().map(visible_width).collect();
        assert_eq!(visible, plain.lines().map(UnicodeWidthStr::width).collect::<Vec<_>>());
        let records = render(&kri_columns(), &kri_rows(), 40, true);
        assert!(records.contains("\x1b[1mtap\x1b[0m") && records.contains("\x1b[33mpartial\x1b[0m"));
        assert_fits(&records, 40);
    }

    #[test]
    fn unicode_is_measured_by_display_width() {
        let cols = [col("NAME", Fit::Whole, 0, false), col("BAND", Fit::Whole, 0, false)];
        let rows = vec![vec!["café".into(), "—".into()], vec!["報告".into(), "red".into()]];
        let out = render(&cols, &rows, 80, false);
        assert_eq!(out, "NAME  BAND\n────  ────\ncafé  —\n報告  red");
    }

    #[test]
    fn edge_cases_do_not_panic() {
        assert_eq!(render(&[], &[vec!["x".into()]], 80, true), "");
        let cols = [col("A", Fit::Whole, 0, false), col("B", Fit::Wrap { min: 5 }, 0, false)];
        assert_eq!(render(&cols, &[], 80, false), "A  B\n─  ─");
        // Short and long rows, control characters, a width below the floor.
        let rows = vec![vec![], vec!["x\ty".into(), "one\ntwo\x1bthree".into(), "extra".into()]];
        let out = render(&cols, &rows, 0, false);
        // The empty row is an empty line.
        assert_eq!(out, "A    B\n───  ─────────────\n\nx y  one two three");
        assert!(!out.as_bytes().contains(&0x1b));
        let long = render(&cols, &[vec!["a".into(), "y".repeat(50).into()]], 20, false);
        assert_fits(&long, 20);
        assert_eq!(long.lines().count(), 2 + 3, "{long}");
    }

    #[test]
    fn wrap_at_spaces_and_hard_wrap_long_words() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh ij", 3), ["abc", "def", "gh", "ij"]);
        assert_eq!(wrap("", 4), [""]);
        assert_eq!(wrap("報告書", 1), ["報", "告", "書"]);
    }
}
