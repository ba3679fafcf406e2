//! Secrets: wrapped so they never print, lenient about what figment hands us, and known to the
//! ONE scrubber that every error path, log line, printed line and stored text goes through.
//!
//! Every [`Secret`] registers itself with the scrubber when it is made, in every form the program
//! can know: the raw text, URL- and form-encoded, JSON-escaped and base64. HTTP Basic credentials
//! add the base64 of `principal:secret` (the Authorization header's payload), and tokens parsed
//! from an answer are `Secret`s too, so an `access_token` a server hands back is scrubbed from
//! then on, wherever it shows up.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::RwLock;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A secret value from the config file or the environment. `Debug` prints `[redacted]`.
///
/// figment parses `KRI_…=12345` as a number, so a secret that looks like a number (or a bool)
/// is accepted and kept as the text the user wrote.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wrap `value` and register it (in all its forms) with the scrubber.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Self(SecretString::from(value))
    }

    /// The secret text. Call only where it is sent to the API.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A secret serializes as a placeholder, never its value (`kri config check` lists the settings
/// in force, secrets included, by serializing the connectors' parsed configs).
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(SECRET_SHOWN)
    }
}

/// What a secret is shown as.
pub const SECRET_SHOWN: &str = "(secret: set, not shown)";

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientString).map(Secret::new)
    }
}

/// Accepts a string, or a number/bool that figment parsed out of an environment value.
pub(crate) struct LenientString;

impl Visitor<'_> for LenientString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Deserialize an id-like string that may arrive as a number (`client_id = 12345`).
pub fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_any(LenientString)
}

/// Like [`lenient_string`] for an optional field.
pub fn lenient_opt_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    lenient_string(deserializer).map(Some)
}

/// A secret given directly (`key`) or in a file (`key_file`: container secrets, systemd
/// credentials). Not both; the file's content without its final line break; an empty or
/// unreadable file is a config error naming `file_key` and the path (never the content).
pub fn from_value_or_file(
    value: Option<Secret>,
    file: Option<&std::path::Path>,
    key: &str,
    file_key: &str,
) -> Result<Option<Secret>, crate::config::ConfigError> {
    use crate::config::ConfigError;
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            file_key,
            format!("set either {key} or {file_key}, not both"),
        )),
        (Some(v), None) => Ok(Some(v)),
        (None, file) => from_value_or_file_checked(None, file, key, file_key, |_| Ok(())),
    }
}

/// [`from_value_or_file`], the secret checked by `check` BEFORE it is known to the scrubber:
/// a secret too short to be one ("short") must not be scrubbed out of the very message that
/// says so. `check`'s message must not quote the secret.
pub fn from_value_or_file_checked(
    value: Option<String>,
    file: Option<&std::path::Path>,
    key: &str,
    file_key: &str,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Option<Secret>, crate::config::ConfigError> {
    use crate::config::ConfigError;
    if let Some(v) = &value {
        check(v).map_err(|m| ConfigError::invalid(key, m))?;
    }
    let value = value.map(Secret::new);
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            file_key,
            format!("set either {key} or {file_key}, not both"),
        )),
        (Some(v), None) => Ok(Some(v)),
        (None, None) => Ok(None),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::invalid(file_key, format!("cannot read `{}`: {e}", path.display())))?;
            let text = text.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                return Err(ConfigError::invalid(
                    file_key,
                    format!("`{}` is empty: it should hold the secret", path.display()),
                ));
            }
            check(text).map_err(|m| ConfigError::invalid(file_key, m))?;
            Ok(Some(Secret::new(text)))
        }
    }
}

/// Text shorter than this is not scrubbed: replacing every `ab` in a message would destroy it,
/// and a secret that short is no secret.
const MIN_SCRUB_CHARS: usize = 4;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Every form of every secret seen, and the matcher built from them (rebuilt on the first scrub
/// after a new form): one pass over a text finds any of them, however many tenants' secrets
/// there are (a thousand tenants register tens of thousands of forms).
struct Forms {
    list: Vec<String>,
    seen: BTreeSet<String>,
    matcher: Option<std::sync::Arc<aho_corasick::AhoCorasick>>,
}

static FORMS: RwLock<Forms> = RwLock::new(Forms {
    list: Vec::new(),
    seen: BTreeSet::new(),
    matcher: None,
});

/// Register `secret` with the scrubber, in every form it may take on the wire or in an echo.
pub fn register(secret: &str) {
    let forms = forms_of(secret);
    if forms.is_empty() {
        return;
    }
    let mut all = FORMS.write().unwrap_or_else(|p| p.into_inner());
    for f in forms {
        if !all.seen.contains(&f) {
            all.seen.insert(f.clone());
            all.list.push(f);
            all.matcher = None;
        }
    }
}

/// The matcher of every registered form (leftmost-longest: a long form wins over a shorter one
/// inside it), or `None` when no secret is registered.
fn matcher() -> Option<std::sync::Arc<aho_corasick::AhoCorasick>> {
    {
        let all = FORMS.read().unwrap_or_else(|p| p.into_inner());
        if all.list.is_empty() {
            return None;
        }
        if let Some(m) = &all.matcher {
            return Some(m.clone());
        }
    }
    let mut all = FORMS.write().unwrap_or_else(|p| p.into_inner());
    if all.matcher.is_none() {
        match aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&all.list)
        {
            Ok(m) => all.matcher = Some(std::sync::Arc::new(m)),
            Err(e) => {
                tracing::error!("cannot build the secret scrubber: {e}");
                return None;
            }
        }
    }
    all.matcher.clone()
}

fn forms_of(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    if secret.trim().chars().count() < MIN_SCRUB_CHARS {
        return Vec::new();
    }
    let mut forms = vec![secret.to_owned(), secret.trim().to_owned()];
    forms.push(form_urlencoded::byte_serialize(secret.as_bytes()).collect());
    forms.push(percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC).to_string());
    if let Ok(json) = serde_json::to_string(secret) {
        forms.push(json.trim_matches('"').to_owned());
    }
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        forms.push(engine.encode(secret));
    }
    forms.retain(|f| f.chars().count() >= MIN_SCRUB_CHARS);
    forms
}

/// `text` with every known form of every secret replaced by `[redacted]`. Call it BEFORE text is
/// clipped, logged, printed or stored: a clipped secret can no longer be recognised.
pub fn scrub(text: &str) -> String {
    match matcher() {
        None => text.to_owned(),
        Some(m) => {
            let mut out = String::with_capacity(text.len());
            m.replace_all_with(text, &mut out, |_, _, dst| {
                dst.push_str(REDACTED);
                true
            });
            out
        }
    }
}

/// [`scrub`] without a copy when nothing is to be replaced (the common case).
pub fn scrub_cow(text: &str) -> std::borrow::Cow<'_, str> {
    match matcher() {
        Some(m) if m.is_match(text) => std::borrow::Cow::Owned(scrub(text)),
        _ => std::borrow::Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_scrubbed_and_short_text_is_left_alone() {
        let _ = Secret::new("p@ss w/rd+\"q");
        let echoed = "raw p@ss w/rd+\"q form p%40ss+w%2Frd%2B%22q pct p%40ss%20w%2Frd%2B%22q \
                      json p@ss w/rd+\\\"q b64 cEBzcyB3L3JkKyJx";
        let clean = scrub(echoed);
        for leaked in ["p@ss", "w/rd", "w%2Frd", "cEBzcyB3L3JkKyJx"] {
            assert!(!clean.contains(leaked), "{leaked} in {clean}");
        }
        assert_eq!(clean.matches(REDACTED).count(), 5, "{clean}");
        let _ = Secret::new("ab");
        assert_eq!(scrub("ab cd"), "ab cd", "a two-character secret is not scrubbed");
        assert!(matches!(scrub_cow("nothing to hide"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn numbers_and_bools_become_their_text() {
        let s: Secret = serde_json::from_str("12345").unwrap();
        assert_eq!(s.expose(), "12345");
        let s: Secret = serde_json::from_str("true").unwrap();
        assert_eq!(s.expose(), "true");
        let s: Secret = serde_json::from_str("\"a:b\"").unwrap();
        assert_eq!(s.expose(), "a:b");
    }
}
