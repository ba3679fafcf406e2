//! Text from outside (API answers, server errors, ids) on its way to a terminal, a log line or a
//! CSV cell: control characters made visible, so an API cannot move the cursor, ring the bell,
//! recolour the screen or forge a line of output (a newline in an incident id once wrote a whole
//! line of stderr). One function, used everywhere, like the secret scrubber.

use std::borrow::Cow;
use std::fmt::Write;

/// Characters shown escaped: every control character (C0, DEL, C1) and the bidirectional
/// overrides and isolates, which reorder what a terminal shows.
fn hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// `text` with every [hidden] character written out: `\n`, `\r`, `\t`, `\x1b`, `\u{202e}`.
/// Borrowed when there is none (the usual case).
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hidden(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// At most `max_chars` characters of `text`, with `…` when it was cut (a bound at the edge for
/// text from outside that goes on somewhere: an event, a message).
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

/// [`visible`], except line breaks: for a message of several lines written by kri itself, with
/// text from outside inside it.
pub fn visible_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && hidden(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.split('\n').map(visible).collect::<Vec<_>>().join("\n"))
}

/// `text` trimmed, checked as one line people wrote (a note, an owner, a title): no control
/// character, at most `max` characters. The error says what is wrong (the caller names where).
pub fn one_line(text: &str, max: usize) -> Result<String, String> {
    let text = text.trim();
    if text.chars().any(char::is_control) {
        return Err("has a control character (a newline, a tab): write it on one line".into());
    }
    if text.chars().count() > max {
        return Err(format!("is longer than {max} characters: shorten it"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_at_a_character_and_says_so() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn control_characters_are_written_out_and_the_rest_is_untouched() {
        assert!(matches!(visible("plain text, äöü, 日本"), Cow::Borrowed(_)));
        assert_eq!(visible("a\x1b[2Jb\x07"), "a\\x1b[2Jb\\x07");
        assert_eq!(visible("id\nwarning: forged"), "id\\nwarning: forged");
        assert_eq!(visible("\r\t\u{9b}\u{7f}"), "\\r\\t\\x9b\\x7f");
        assert_eq!(visible("abc\u{202e}def"), "abc\\u{202e}def");
        assert_eq!(visible_lines("one\x1b\ntwo"), "one\\x1b\ntwo");
        assert!(matches!(visible_lines("one\ntwo"), Cow::Borrowed(_)));
    }
}
