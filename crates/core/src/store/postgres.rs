//! Connecting to a PostgreSQL store: the URL as people may see it (never its password), the
//! options kri adds (`pool_max_size`) or reads itself (`sslmode`, `sslrootcert`: TLS through
//! rustls, with libpq's meanings), and the pool.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;

use crate::tls::{PgTls, PgTrust};

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
    /// `sslmode` and `sslrootcert`, read by kri (the driver knows neither `verify-ca`,
    /// `verify-full` nor root certificates).
    ssl_mode: Option<String>,
    ssl_root_cert: Option<String>,
}

/// What `sslmode` and `sslrootcert` ask for: the driver's mode and how the server is checked.
fn ssl(mode: Option<&str>, root_cert: Option<&str>) -> Result<(SslMode, PgTrust), String> {
    let roots =
        |path: &str| crate::tls::read_ca_file(std::path::Path::new(path)).map_err(|e| format!("sslrootcert: {e}"));
    let root_cert = root_cert.filter(|r| !r.is_empty());
    let system = root_cert == Some("system");
    Ok(match mode.unwrap_or("prefer") {
        "disable" => (SslMode::Disable, PgTrust::Off),
        "prefer" | "allow" => (SslMode::Prefer, PgTrust::Encrypt),
        "require" => match root_cert {
            // libpq: `require` with a root certificate checks the chain, like verify-ca.
            Some(path) if !system => (SslMode::Require, PgTrust::Chain(roots(path)?)),
            _ => (SslMode::Require, PgTrust::Encrypt),
        },
        "verify-ca" => match root_cert {
            Some(path) if !system => (SslMode::Require, PgTrust::Chain(roots(path)?)),
            _ => {
                return Err(
                    "sslmode=verify-ca needs sslrootcert=FILE, the PEM file of the CA that signed the \
                            server's certificate (or use sslmode=verify-full with sslrootcert=system)"
                        .into(),
                );
            }
        },
        "verify-full" => match root_cert {
            Some(path) if !system => (SslMode::Require, PgTrust::Full(Some(roots(path)?))),
            _ => (SslMode::Require, PgTrust::Full(None)),
        },
        other => {
            return Err(format!(
                "sslmode={other} is not a mode: use disable, prefer (the default), require, verify-ca or verify-full"
            ));
        }
    })
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
    let (mode, trust) = ssl(url.ssl_mode.as_deref(), url.ssl_root_cert.as_deref()).map_err(config_err)?;
    config.ssl_mode(mode);
    let tls = PgTls::new(&trust).map_err(config_err)?;
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
        tls,
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
        let failure = StoreFailure::from_pool(e);
        let action = if failure.to_string().contains("invalid peer certificate") {
            "connecting to PostgreSQL over TLS (the server's certificate was refused: name the CA that signed it \
             with sslrootcert=FILE in [store] url, and connect by a host name the certificate holds)"
        } else {
            "connecting to PostgreSQL (check [store] url and that the server runs)"
        };
        err(action, failure)
    })?;
    schema::migrate_pg(&mut client, version)
        .await
        .map_err(|e| err("migrating the schema", e))?;
    drop(client);
    Ok(Store {
        backend: Backend::Postgres { pool, shown: url.shown },
        tenant: None,
        value_events: false,
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
    let (mut ssl_mode, mut ssl_root_cert) = (None, None);
    let mut driver_opts = Vec::new();
    let decoded = |v: &str| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decoded(key).as_str() {
            "password" => passwords.push(value.to_owned()),
            "pool_max_size" => {
                pool_max_size = Some(value.to_owned());
                continue;
            }
            "sslmode" => {
                ssl_mode = Some(decoded(value));
                continue;
            }
            "sslrootcert" => {
                ssl_root_cert = Some(decoded(value));
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
        ssl_mode,
        ssl_root_cert,
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
    let mut driver = Vec::new();
    let (mut ssl_mode, mut ssl_root_cert) = (None, None);
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
        match key {
            "sslmode" => ssl_mode = Some(value.clone()),
            "sslrootcert" => ssl_root_cert = Some(value.clone()),
            _ => driver.push(format!("{key}='{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))),
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
        // Cut short (an unreadable rest): the driver reads the original and says what is wrong.
        driver: if shown.last().is_some_and(|s| s == "…") {
            text.to_owned()
        } else {
            driver.join(" ")
        },
        shown: shown.join(" "),
        passwords,
        pool_max_size: None,
        ssl_mode,
        ssl_root_cert,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_options_are_read_by_kri_and_kept_from_the_driver() {
        let u = split("postgres://kri:pw@db/kri?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x");
        assert_eq!(u.driver, "postgres://kri:pw@db/kri?application_name=x");
        assert_eq!(
            (u.ssl_mode.as_deref(), u.ssl_root_cert.as_deref()),
            (Some("verify-full"), Some("/etc/ca.pem"))
        );
        assert!(
            u.shown
                .ends_with("?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x")
        );
        let k = split(r"host=db user=kri password='p \'w' sslmode=verify-ca sslrootcert='/etc/my ca.pem'");
        assert_eq!(k.driver, r"host='db' user='kri' password='p \'w'");
        assert_eq!(
            (k.ssl_mode.as_deref(), k.ssl_root_cert.as_deref()),
            (Some("verify-ca"), Some("/etc/my ca.pem"))
        );
        assert!(k.driver.parse::<tokio_postgres::Config>().is_ok());
    }

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

/// The store against a real PostgreSQL server with `ssl = on`, a certificate for `localhost`
/// signed by a CA made in the test, and TCP allowed only over TLS.
#[cfg(test)]
mod tls_tests {
    use crate::store::Store;

    fn port(url: &str) -> &str {
        let after = url.rsplit_once(':').map(|(_, p)| p).unwrap_or_default();
        after.split('/').next().unwrap_or_default()
    }

    #[tokio::test]
    async fn the_store_speaks_tls_with_libpqs_modes() {
        let ca = kri_testtls::TestCa::new("kri test CA");
        let cert = ca.server(&["localhost"]);
        let pg = kri_testpg::TestPg::start_tls(&cert.cert_pem, &cert.key_pem).expect("a TLS test server");
        let dir = tempfile::tempdir().unwrap();
        let ca_file = ca.write(dir.path(), "ca.pem");
        let other_ca = kri_testtls::TestCa::new("another CA").write(dir.path(), "other.pem");
        let (ca_file, other_ca) = (ca_file.display().to_string(), other_ca.display().to_string());
        let port = port(&pg.url);
        let at = |host: &str, options: &str| format!("postgres://kri@{host}:{port}/postgres?{options}");

        let encrypted = [
            at("localhost", &format!("sslmode=verify-full&sslrootcert={ca_file}")),
            // verify-ca checks the chain, not the name (the certificate is for localhost).
            at("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca_file}")),
            at("127.0.0.1", &format!("sslmode=require&sslrootcert={ca_file}")),
            // require without a root, and the default (prefer): encrypted, like libpq.
            at("127.0.0.1", "sslmode=require"),
            at("127.0.0.1", ""),
            format!("host=localhost port={port} user=kri dbname=postgres sslmode=verify-full sslrootcert='{ca_file}'"),
        ];
        for url in &encrypted {
            let store = Store::connect(url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
            drop(store);
        }

        let refused = [
            // The server refuses a client that does not encrypt: every case above did.
            (at("127.0.0.1", "sslmode=disable"), "no encryption"),
            (
                at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca_file}")),
                "certificate",
            ),
            (
                at("localhost", &format!("sslmode=verify-full&sslrootcert={other_ca}")),
                "name the CA that signed it with sslrootcert=FILE",
            ),
            (
                at("localhost", &format!("sslmode=require&sslrootcert={other_ca}")),
                "certificate",
            ),
            // The system's roots do not know the test CA.
            (at("localhost", "sslmode=verify-full"), "certificate"),
            (at("localhost", "sslmode=verify-ca"), "needs sslrootcert=FILE"),
            (
                at("localhost", "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
                "sslrootcert: cannot read `/nonexistent/ca.pem`",
            ),
            (at("localhost", "sslmode=always"), "sslmode=always is not a mode"),
        ];
        for (url, says) in &refused {
            let e = Store::connect(url)
                .await
                .err()
                .unwrap_or_else(|| panic!("{url} connected"));
            let text = e.to_string();
            assert!(text.contains(says), "{url}: {text}");
        }
    }
}
