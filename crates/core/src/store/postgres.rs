//! Connecting to a PostgreSQL store: the URL as people may see it (never its password), the
//! options kri adds (`pool_max_size`), what it refuses (TLS, for now), and the pool.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

use super::{Backend, Store, StoreError, StoreFailure, schema};

/// Connections kept at most, unless `?pool_max_size=N` says otherwise: several runs (a
/// service's 16 by default), the scheduler and the HTTP server use the store at once, each for
/// short statements. Under load a pool smaller than the runs in flight starves them for its
/// wait (seen: 30 s stalls with 8 connections for 32 runs), so keep it above them.
const POOL_MAX_SIZE: usize = 24;
const POOL_MAX_SIZE_LIMIT: usize = 100;
/// How long a new connection may take, unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a statement waits for a free connection of the pool.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// A `[store] url` taken apart: what tokio-postgres parses, what people see, and what kri reads.
#[derive(Debug, PartialEq)]
struct Url {
    /// The URL without kri's own options, for tokio-postgres.
    driver: String,
    /// The URL with its password (if any) replaced by `***`.
    shown: String,
    /// Passwords as written in the URL (maybe percent-encoded), for the scrubber.
    passwords: Vec<String>,
    pool_max_size: Option<String>,
}

pub(super) async fn connect(url: &str, version: usize) -> Result<Store, StoreError> {
    let url = split(url);
    for p in &url.passwords {
        crate::secret::register(p);
        if let Ok(decoded) = percent_encoding::percent_decode_str(p).decode_utf8() {
            crate::secret::register(&decoded);
        }
    }
    let err = |action, e| StoreError::new(url.shown.clone(), action, e);
    let config_err = |e: String| err("reading [store] url", StoreFailure::Config(e));
    let mut config: tokio_postgres::Config = url.driver.parse().map_err(|e| {
        config_err(format!(
            "{}; expected postgres://user:password@host:5432/database",
            super::sql::pg_message(&e)
        ))
    })?;
    if let Some(p) = config.get_password().and_then(|p| std::str::from_utf8(p).ok()) {
        crate::secret::register(p);
    }
    if !matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
        return Err(config_err(
            "sslmode=require is not supported yet: kri connects to PostgreSQL without TLS for now; use a server \
             on this host or a private network (or a TLS tunnel) and leave sslmode out or set sslmode=disable"
                .into(),
        ));
    }
    let max_size = match &url.pool_max_size {
        None => POOL_MAX_SIZE,
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=POOL_MAX_SIZE_LIMIT).contains(n))
            .ok_or_else(|| {
                config_err(format!(
                    "pool_max_size={n} is not a number of connections from 1 to {POOL_MAX_SIZE_LIMIT}"
                ))
            })?,
    };
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("kri");
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .build()
        .map_err(|e| config_err(format!("cannot build the connection pool: {e}")))?;
    let mut client = pool.get().await.map_err(|e| {
        err(
            "connecting to PostgreSQL (check [store] url and that the server runs)",
            StoreFailure::from_pool(e),
        )
    })?;
    schema::migrate_pg(&mut client, version)
        .await
        .map_err(|e| err("migrating the schema", e))?;
    drop(client);
    Ok(Store {
        backend: Backend::Postgres { pool, shown: url.shown },
        tenant: None,
    })
}

/// Take `url` apart. A `postgres://` URL keeps the text people wrote, with the password of its
/// user part and any `password=` option replaced by `***`; a `key=value` connection string is
/// shown key by key the same way (and cut short where it cannot be read, so nothing after a
/// misquoted password shows). Mirrors tokio-postgres's parser: the user part ends at the first
/// `@`, the password starts after its first `:`.
fn split(url: &str) -> Url {
    let prefix = ["postgres://", "postgresql://"]
        .into_iter()
        .find(|p| url.starts_with(p));
    match prefix {
        Some(prefix) => split_url(prefix, &url[prefix.len()..]),
        None => split_key_values(url),
    }
}

fn split_url(prefix: &str, rest: &str) -> Url {
    let mut passwords = Vec::new();
    // What tokio-postgres reads: the user part ends at the first `@`.
    let (creds, after) = match rest.split_once('@') {
        Some((creds, after)) => (Some(creds), after),
        None => (None, rest),
    };
    let (base, query) = after.split_once('?').unwrap_or((after, ""));
    let mut pool_max_size = None;
    let mut driver_opts = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_encoding::percent_decode_str(key).decode_utf8_lossy().as_ref() {
            "password" => passwords.push(value.to_owned()),
            "pool_max_size" => {
                pool_max_size = Some(value.to_owned());
                continue;
            }
            _ => {}
        }
        driver_opts.push(pair);
    }
    let mut driver = format!("{prefix}{}{base}", creds.map(|c| format!("{c}@")).unwrap_or_default());
    if !driver_opts.is_empty() {
        driver.push('?');
        driver.push_str(&driver_opts.join("&"));
    }
    // What people see. A password runs from the first `:` of the user part to the LAST `@`:
    // an `@` left unencoded in a password must not show the rest of it.
    let shown = match creds.map(|c| c.split_once(':')) {
        None => format!("{prefix}{}", shown_tail(rest)),
        Some(None) => format!("{prefix}{}@{}", creds.unwrap_or_default(), shown_tail(after)),
        Some(Some((user, password))) => {
            passwords.push(password.to_owned());
            let last_at = rest.rfind('@').unwrap_or(user.len());
            if let Some(wide) = rest.get(user.len() + 1..last_at) {
                passwords.push(wide.to_owned());
            }
            format!("{prefix}{user}:***@{}", shown_tail(&rest[last_at + 1..]))
        }
    };
    passwords.sort();
    passwords.dedup();
    Url {
        driver,
        shown,
        passwords,
        pool_max_size,
    }
}

/// `host/db?options` with the value of a `password` option replaced by `***`.
fn shown_tail(tail: &str) -> String {
    let Some((base, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if percent_encoding::percent_decode_str(key).decode_utf8_lossy() == "password" => {
                format!("{key}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

/// `host=… user=… password=…`, as tokio-postgres reads it: a value is quoted (`'…'`) or ends at
/// white space, and a backslash escapes the next character.
fn split_key_values(text: &str) -> Url {
    let mut shown = Vec::new();
    let mut passwords = Vec::new();
    let mut chars = text.char_indices().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut chars);
        let Some(&(start, _)) = chars.peek() else { break };
        let mut end = start;
        while let Some((i, c)) = chars.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            end = i + c.len_utf8();
        }
        let key = &text[start..end];
        skip_ws(&mut chars);
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            shown.push("…".to_owned());
            break;
        }
        skip_ws(&mut chars);
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let mut value = String::new();
        let mut closed = !quoted;
        while let Some((_, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '\'' if quoted => {
                    closed = true;
                    break;
                }
                c if c.is_whitespace() && !quoted => break,
                c => value.push(c),
            }
        }
        if key == "password" {
            passwords.push(value.clone());
            shown.push("password=***".to_owned());
        } else if key != "pool_max_size" {
            shown.push(format!("{key}={value}"));
        }
        if !closed {
            shown.push("…".to_owned());
            break;
        }
    }
    Url {
        driver: text.to_owned(),
        shown: shown.join(" "),
        passwords,
        pool_max_size: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_url_has_no_password_and_kris_options_are_taken_out() {
        let u = split("postgres://kri:s3cr%40t@db.example:5432/kri?pool_max_size=4&application_name=x");
        assert_eq!(
            u.shown,
            "postgres://kri:***@db.example:5432/kri?pool_max_size=4&application_name=x"
        );
        assert_eq!(
            u.driver,
            "postgres://kri:s3cr%40t@db.example:5432/kri?application_name=x"
        );
        assert_eq!(u.passwords, ["s3cr%40t"]);
        assert_eq!(u.pool_max_size.as_deref(), Some("4"));

        let u = split("postgresql://kri@h/db?password=hunter22&sslmode=disable");
        assert_eq!(u.shown, "postgresql://kri@h/db?password=***&sslmode=disable");
        assert_eq!(u.passwords, ["hunter22"]);

        let u = split("postgres://kri:p@ss/w@h/db");
        assert_eq!(u.shown, "postgres://kri:***@h/db", "an unencoded @ in the password");
        assert_eq!(u.passwords, ["p", "p@ss/w"]);

        let u = split("postgres://h:5/db");
        assert_eq!(
            (u.shown.as_str(), u.driver.as_str()),
            ("postgres://h:5/db", "postgres://h:5/db")
        );

        let u = split("host=h user=kri password='a b\\'c' dbname=kri");
        assert_eq!(u.shown, "host=h user=kri password=*** dbname=kri");
        assert_eq!(u.passwords, ["a b'c"]);
        let u = split("host=h password='never closed");
        assert!(!u.shown.contains("never"), "{}", u.shown);
        let u = split("host=h password");
        assert_eq!(u.shown, "host=h …");
    }
}
