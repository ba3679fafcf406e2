//! One store test suite, run on both engines: a test is an `async fn(TestStore)`, and
//! [`on_both_engines!`] makes a `sqlite` and a `postgres` test of it. SQLite stores live in a
//! temporary folder. PostgreSQL stores are databases of their own (`t_…`, so tests are isolated
//! and run in parallel) on ONE server per test binary, [`kri_testpg::TestPg::shared`], which a
//! watchdog stops when the test process ends; with `KRI_TEST_DATABASE_URL` set, that server is
//! used and each test drops its database when it ends.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Store, StoreError, schema};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

/// A store for one test, and where it lives (to open it again).
pub(crate) struct TestStore {
    pub(crate) store: Store,
    pub(crate) target: Target,
}

pub(crate) enum Target {
    Sqlite { _dir: tempfile::TempDir, path: PathBuf },
    Postgres { url: String, db: String },
}

impl Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl TestStore {
    /// A new store, fully migrated.
    pub(crate) async fn new(engine: Engine) -> TestStore {
        Self::at_version(engine, schema::MIGRATIONS.len()).await
    }

    /// A new store migrated only up to `version` (to test a later migration on old rows).
    pub(crate) async fn at_version(engine: Engine, version: usize) -> TestStore {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary folder");
                let path = dir.path().join("kri.db");
                let store = Store::open_upto(&path, version).expect("an SQLite store");
                TestStore {
                    store,
                    target: Target::Sqlite { _dir: dir, path },
                }
            }
            Engine::Postgres => {
                let (url, db) = new_database().await;
                let store = super::postgres::connect(&url, version)
                    .await
                    .expect("a PostgreSQL store");
                TestStore {
                    store,
                    target: Target::Postgres { url, db },
                }
            }
        }
    }

    pub(crate) fn engine(&self) -> Engine {
        match self.target {
            Target::Sqlite { .. } => Engine::Sqlite,
            Target::Postgres { .. } => Engine::Postgres,
        }
    }

    /// The same store opened again, as a new process would (migrating it to the newest version).
    pub(crate) async fn reopen(&self) -> Result<Store, StoreError> {
        match &self.target {
            Target::Sqlite { path, .. } => Store::open(path),
            Target::Postgres { url, .. } => Store::connect(url).await,
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        // Our own throw-away server goes away with its databases; a server we were given keeps
        // them, so drop this test's.
        if let Target::Postgres { db, .. } = &self.target
            && std::env::var_os("KRI_TEST_DATABASE_URL").is_some()
        {
            let db = db.clone();
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(admin) = admin().await {
                        let _ = admin
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A connection to the test server's own database, to make and drop test databases.
async fn admin() -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let pg = kri_testpg::TestPg::shared().unwrap_or_else(|e| panic!("no PostgreSQL server for the store tests: {e}"));
    let (client, connection) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A new, empty database on the test server: its URL and its name.
pub(crate) async fn new_database() -> (String, String) {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let db = format!("t_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let admin = admin().await.expect("a connection to the test server");
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .expect("a test database");
    let pg = kri_testpg::TestPg::shared().expect("the test server");
    (with_database(&pg.url, &db), db)
}

/// `url` naming database `db` instead of its own.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[host_start..].find('/') {
        Some(i) => &base[..host_start + i],
        None => base,
    };
    format!("{base}/{db}{query}")
}

/// `on_both_engines!(a, b)`: for each `async fn a(t: TestStore)` in scope, a module `a` with a
/// test `sqlite` and a test `postgres`. `on_both_engines!(engine: a)`: the same for an
/// `async fn a(engine: Engine)` that makes its own stores.
macro_rules! on_both_engines {
    (engine: $($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::store::test_support::Engine;

            #[tokio::test]
            async fn sqlite() {
                super::$name(Engine::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(Engine::Postgres).await;
            }
        }
    )*};
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::store::test_support::{Engine, TestStore};

            #[tokio::test]
            async fn sqlite() {
                super::$name(TestStore::new(Engine::Sqlite).await).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(TestStore::new(Engine::Postgres).await).await;
            }
        }
    )*};
}
pub(crate) use on_both_engines;

#[test]
fn a_url_names_another_database() {
    assert_eq!(
        with_database("postgres://kri@127.0.0.1:5/postgres", "t_1"),
        "postgres://kri@127.0.0.1:5/t_1"
    );
    assert_eq!(
        with_database("postgres://h?sslmode=disable", "t"),
        "postgres://h/t?sslmode=disable"
    );
}
