//! What a connector's constructor receives: its own config table (the runner has already taken
//! the framework's keys `enabled`, `schedule`, `kris`, `timeout`, `connect_timeout`,
//! `run_timeout`), the shared table of its family when it has one (settings several connectors
//! of one vendor share, e.g. a base URL and credentials), and the HTTP options to build clients
//! with.

use figment::Figment;
use figment::providers::Serialized;
use figment::value::Dict;
use serde::de::DeserializeOwned;

use crate::http::HttpOptions;

/// A config problem, found before any network call. Exit code 2.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The dotted key at fault, e.g. `connectors.acme.max_fetch`.
    pub key: String,
    /// What is wrong and how to fix it. Never contains a secret value.
    pub message: String,
    /// True when something required is absent (rather than present and wrong). The runner
    /// tolerates missing settings for disabled connectors, never wrong ones.
    pub missing: bool,
    /// The other errors of the same table, found at once (a table with two bad keys says both).
    pub more: Vec<ConfigError>,
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            missing: false,
            more: Vec::new(),
        }
    }
    pub fn missing(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            missing: true,
            more: Vec::new(),
        }
    }
}

/// A connector's own table, ready to deserialize into the connector's config struct, its
/// family's shared table, and the HTTP options the framework resolved.
#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    pub module: &'static str,
    table: Dict,
    /// The family's key and its table as written (empty when absent).
    family: Option<(&'static str, Dict)>,
    http: HttpOptions,
    concurrency: usize,
    /// Every key the connector read, with the value in force (defaults included), as its
    /// parsed config serializes: what `kri config check` lists.
    effective: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl ConnectorSettings {
    pub fn new(module: &'static str, table: Dict) -> Self {
        Self {
            module,
            table,
            family: None,
            http: HttpOptions::default(),
            concurrency: 1,
            effective: Default::default(),
        }
    }

    /// The keys the connector read (its own and its family's) with the values in force,
    /// defaults included; secrets as a placeholder. Filled by [`ConnectorSettings::parse`] and
    /// [`ConnectorSettings::parse_family`].
    pub fn effective(&self) -> Vec<(String, String)> {
        self.effective.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn note_effective(&self, prefix: &str, parsed: &impl serde::Serialize) {
        let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(parsed) else {
            return;
        };
        let mut effective = self.effective.lock().unwrap_or_else(|p| p.into_inner());
        for (k, v) in fields {
            let key = format!("{prefix}.{k}");
            if v.is_null() || effective.iter().any(|(e, _)| *e == key) {
                continue;
            }
            effective.push((key, v.to_string()));
        }
    }

    /// The same settings allowing `n` requests in flight at once (the framework's `concurrency`).
    pub fn with_concurrency(self, n: usize) -> Self {
        Self {
            concurrency: n.max(1),
            ..self
        }
    }

    /// How many requests this connector may have in flight at once (at least 1).
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The same settings with the shared table of the connector's family (`[key]`).
    pub fn with_family(self, key: &'static str, table: Dict) -> Self {
        Self {
            family: Some((key, table)),
            ..self
        }
    }

    /// The same settings with the framework's HTTP options (from `timeout`, `connect_timeout`).
    pub fn with_http(self, http: HttpOptions) -> Self {
        Self { http, ..self }
    }

    /// Time-outs and retries for this connector's clients: build every client with these.
    pub fn http_options(&self) -> HttpOptions {
        self.http.clone()
    }

    /// The prefix of this connector's keys, e.g. `connectors.acme`.
    pub fn key(&self, field: &str) -> String {
        format!("connectors.{}.{field}", self.module)
    }

    /// Deserialize the table into `T` (declare it `#[serde(deny_unknown_fields)]` with
    /// defaults). Errors name the key and what is accepted; the runner adds where it was set.
    /// `T` also serializes: the values it holds (defaults included) are what `kri config check`
    /// shows in force. Secrets serialize as a placeholder.
    pub fn parse<T: DeserializeOwned + serde::Serialize>(&self) -> Result<T, ConfigError> {
        let prefix = format!("connectors.{}", self.module);
        let parsed: T = parse_keys(&self.table, &prefix, FRAMEWORK_KEYS)?;
        self.note_effective(&prefix, &parsed);
        Ok(parsed)
    }

    /// Deserialize the family's shared table into `T` (an empty table when it is absent).
    pub fn parse_family<T: DeserializeOwned + serde::Serialize>(&self) -> Result<T, ConfigError> {
        let (key, parsed) = match &self.family {
            Some((key, table)) => (*key, parse_table::<T>(table, key)?),
            None => return parse_table(&Dict::new(), "(family)"),
        };
        self.note_effective(key, &parsed);
        Ok(parsed)
    }
}

/// The keys every connector table takes, owned by the framework (the runner takes them out
/// before the connector sees its table; an unknown key lists them too).
pub const FRAMEWORK_KEYS: &[&str] = &[
    "enabled",
    "schedule",
    "at",
    "kris",
    "timeout",
    "connect_timeout",
    "run_timeout",
    "concurrency",
    "proxy",
    "ca_file",
];

/// Deserialize `table`, written under `[prefix]`, into `T`; errors name `prefix.field`.
pub fn parse_table<T: DeserializeOwned>(table: &Dict, prefix: &str) -> Result<T, ConfigError> {
    parse_keys(table, prefix, &[])
}

/// [`parse_table`], where `also` are keys accepted there too (taken out before). Every bad key
/// of the table is reported, not only the first serde meets: each key is then tried alone
/// (absent keys take their defaults; a required key missing is said once, by the first error).
pub(crate) fn parse_keys<T: DeserializeOwned>(table: &Dict, prefix: &str, also: &[&str]) -> Result<T, ConfigError> {
    let extract = |t: &Dict| Figment::from(Serialized::defaults(t)).extract::<T>().map_err(Box::new);
    let mut first = match extract(table) {
        Ok(v) => return Ok(v),
        Err(e) => key_error(&e, prefix, also),
    };
    for (k, v) in table {
        let alone: Dict = [(k.clone(), v.clone())].into_iter().collect();
        if let Err(e) = extract(&alone)
            && !matches!(e.kind, figment::error::Kind::MissingField(_))
        {
            let e = key_error(&e, prefix, also);
            if e.key != first.key && !first.more.iter().any(|m| m.key == e.key) {
                first.more.push(e);
            }
        }
    }
    Err(first)
}

fn key_error(e: &figment::Error, prefix: &str, also: &[&str]) -> ConfigError {
    {
        let field = e.path.join(".");
        let (key, message) = match &e.kind {
            figment::error::Kind::UnknownField(unknown, expected) => {
                let accepted: Vec<&str> = also.iter().copied().chain(expected.iter().copied()).collect();
                (
                    format!("{prefix}.{unknown}"),
                    format!(
                        "unknown key `{unknown}`{}; the keys accepted here are: {}",
                        did_you_mean(unknown, &accepted),
                        accepted.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    ),
                )
            }
            _ if field.is_empty() => (prefix.to_owned(), describe(e)),
            _ => (format!("{prefix}.{field}"), describe(e)),
        };
        ConfigError::invalid(key, message)
    }
}

impl ConfigError {
    /// This error and the others of its table, one by one.
    pub fn all(mut self) -> Vec<ConfigError> {
        let more = std::mem::take(&mut self.more);
        std::iter::once(self)
            .chain(more.into_iter().flat_map(ConfigError::all))
            .collect()
    }
}

/// ` (did you mean `schedule`?)` for a near miss of one of `candidates`, else nothing.
pub fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    let w = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&w, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).clamp(1, 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// Levenshtein distance (insertions, deletions, substitutions), by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A serde type name in plain words.
fn plain(expected: &str) -> String {
    let e = expected.trim();
    let words = if e.contains("f64") || e.contains("f32") || e.contains("floating") {
        "a number, e.g. 10 or 2.5"
    } else if [
        "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize", "integer",
    ]
    .iter()
    .any(|t| e == *t || e.contains(&format!("{t} ")) || e.ends_with(t))
    {
        "a whole number, e.g. 5"
    } else if e.contains("sequence") {
        "a list, e.g. [\"a\", \"b\"] (in an environment variable: '[\"a\",\"b\"]')"
    } else if e.contains("bool") {
        "true or false"
    } else if e.contains("string") || e.contains("char") {
        "text in quotes, e.g. \"daily\""
    } else if e.contains("map") || e.contains("struct") {
        "a table: [name] with its keys under it"
    } else {
        e
    };
    words.to_owned()
}

/// figment's own message names the key with its profile ("default.x"); say it plainly.
pub fn describe(e: &figment::Error) -> String {
    use figment::error::Kind;
    match &e.kind {
        Kind::UnknownField(field, expected) => format!(
            "unknown key `{field}`{}; the keys accepted here are: {}",
            did_you_mean(field, expected),
            expected.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        ),
        Kind::MissingField(field) => format!("missing required key `{field}`"),
        Kind::InvalidType(actual, expected) => {
            format!("found {actual}, expected {}", plain(expected))
        }
        Kind::InvalidValue(actual, expected) => {
            format!("found {actual}, expected {}", plain(expected))
        }
        Kind::UnknownVariant(v, expected) => format!(
            "unknown value `{v}`{}; accepted: {}",
            did_you_mean(v, expected),
            expected.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// The longest duration any setting accepts (ten years): beyond it, date arithmetic overflows.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(3650 * 86_400);

/// Parse a duration written for people: `30m`, `2h`, `90s`, `3 days`, `12 hours`; at most
/// [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    parse_duration_within(text, MAX_DURATION)
}

/// [`parse_duration`], at most `max`.
pub fn parse_duration_within(text: &str, max: std::time::Duration) -> Result<std::time::Duration, String> {
    let compact: String = text.split_whitespace().collect::<Vec<_>>().join("");
    let d = humantime::parse_duration(&compact)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write it like `30m`, `2h`, `90s` or `3 days`"))?;
    if d > max {
        return Err(format!(
            "`{text}` is too long: at most {}",
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// A boolean that may arrive as text (`"true"`, `"False"`): environment values are kept as the
/// user wrote them.
pub fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("true or false")
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
            }
        }
    }
    d.deserialize_any(V)
}

/// A number that may arrive as text (`"10.0"`), for the same reason as [`lenient_bool`].
pub fn lenient_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = f64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number")
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<f64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
        }
    }
    d.deserialize_any(V)
}

/// Like [`lenient_f64`] for an optional field.
pub fn lenient_opt_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    lenient_f64(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Own {
        #[serde(default)]
        count_quarantine_as_enforced: bool,
    }

    fn settings(table: Dict) -> ConnectorSettings {
        ConnectorSettings::new("efd", table)
    }

    /// What a connector read is listed with the values in force, defaults included, its
    /// secrets as a placeholder.
    #[test]
    fn the_values_in_force_are_noted_defaults_and_secrets_included() {
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        struct Cfg {
            #[serde(default = "ten")]
            max: u32,
            token: Option<crate::Secret>,
            url: Option<String>,
        }
        fn ten() -> u32 {
            10
        }
        let mut t = Dict::new();
        t.insert("token".into(), "tok-4471-secret".into());
        let s = settings(t);
        let _: Cfg = s.parse().unwrap();
        let effective = s.effective();
        assert_eq!(
            effective,
            vec![
                ("connectors.efd.max".to_owned(), "10".to_owned()),
                (
                    "connectors.efd.token".to_owned(),
                    format!("\"{}\"", crate::secret::SECRET_SHOWN)
                ),
            ]
        );
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_accepted_ones() {
        let mut t = Dict::new();
        t.insert("count_quarantine".into(), true.into());
        let e = settings(t).parse::<Own>().unwrap_err();
        assert_eq!(e.key, "connectors.efd.count_quarantine");
        assert!(e.message.contains("unknown key `count_quarantine`"), "{e}");
        assert!(e.message.contains("`count_quarantine_as_enforced`"), "{e}");
    }

    #[test]
    fn the_family_table_is_parsed_with_its_own_key_names() {
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Shared {
            base_url: Option<String>,
        }
        let mut family = Dict::new();
        family.insert("base_uri".into(), "x".into());
        let e = settings(Dict::new())
            .with_family("acme", family)
            .parse_family::<Shared>()
            .unwrap_err();
        assert_eq!(e.key, "acme.base_uri");
        let none: Shared = settings(Dict::new()).parse_family().unwrap();
        assert!(none.base_url.is_none());
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(parse_duration("30m").unwrap().as_secs(), 1800);
        assert_eq!(parse_duration("3 days").unwrap().as_secs(), 3 * 86400);
        assert_eq!(parse_duration("12 hours").unwrap().as_secs(), 12 * 3600);
        assert!(parse_duration("soon").unwrap_err().contains("`soon`"));
        let e = parse_duration("100000000 years").unwrap_err();
        assert!(e.contains("too long") && e.contains("at most"), "{e}");
        assert!(parse_duration_within("2h", std::time::Duration::from_secs(3600)).is_err());
    }

    #[test]
    fn booleans_and_numbers_may_arrive_as_text() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "lenient_bool")]
            b: bool,
            #[serde(deserialize_with = "lenient_f64")]
            f: f64,
        }
        let t: T = serde_json::from_str(r#"{"b": "False", "f": "10.0"}"#).unwrap();
        assert!(!t.b && t.f == 10.0);
        let t: T = serde_json::from_str(r#"{"b": true, "f": 3}"#).unwrap();
        assert!(t.b && t.f == 3.0);
        assert!(serde_json::from_str::<T>(r#"{"b": "yes", "f": 1}"#).is_err());
    }
}
