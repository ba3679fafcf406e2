//! Start a sandbox, write a config pointing at it, run the real binary.

use std::path::PathBuf;

use kri_sandbox::{Sandbox, Scenario};
use serde_json::Value;

pub struct Kri {
    pub sandbox: Sandbox,
    pub dir: tempfile::TempDir,
    /// The instant the sandbox and kri both take as "now" (`KRI_TEST_NOW`).
    now: std::sync::Mutex<chrono::DateTime<chrono::Utc>>,
}

/// When the end-to-end tests run: a fixed instant, 20 minutes into an hour, so every count is
/// exact (168 hourly windows, 30 campaign days).
pub fn test_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-11-23T10:20:00Z")
        .expect("valid time")
        .to_utc()
}

#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl Kri {
    pub async fn new(mut scenario: Scenario) -> Self {
        let now = *scenario.now.get_or_insert_with(test_now);
        let sandbox = Sandbox::start(scenario).await.expect("sandbox starts");
        Kri {
            sandbox,
            dir: tempfile::tempdir().expect("temp dir"),
            now: std::sync::Mutex::new(now),
        }
    }

    /// The sandbox's and kri's "now".
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.now.lock().unwrap()
    }

    /// Move "now" for the sandbox and the next runs of kri.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().unwrap();
        *now += by;
        self.sandbox.set_now(*now);
    }

    pub async fn default() -> Self {
        Self::new(Scenario::default()).await
    }

    /// `kri.toml` in the temp dir: the sandbox as base URL, `credentials` as given (None: the
    /// sandbox's own), the store in the temp dir, then `extra`.
    pub fn config_with(&self, credentials: Option<&str>, extra: &str) -> PathBuf {
        let mut text = format!(
            "[store]\npath = \"{}\"\n\n[proofpoint]\nbase_url = \"{}\"\n",
            self.db().display(),
            self.sandbox.base_url()
        );
        if let Some(c) = credentials
            .map(str::to_owned)
            .or_else(|| Some(self.sandbox.credentials()))
            .filter(|c| !c.is_empty())
        {
            text.push_str(&format!("credentials = \"{c}\"\n"));
        }
        text.push_str(extra);
        let path = self.dir.path().join("kri.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    pub fn config(&self, extra: &str) -> PathBuf {
        self.config_with(None, extra)
    }

    /// `kri.toml` like [`Kri::config`], with `base_url` as the API's address (a TLS front).
    pub fn config_for(&self, base_url: &str, extra: &str) -> PathBuf {
        let path = self.config(extra);
        let text = std::fs::read_to_string(&path).expect("read config");
        let text = text.replacen(
            &format!("base_url = \"{}\"", self.sandbox.base_url()),
            &format!("base_url = \"{base_url}\""),
            1,
        );
        std::fs::write(&path, text).expect("write config");
        path
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("kri.db")
    }

    /// A `[connectors.ctr]` table pointing at the sandbox with `secret`, no client-side limit.
    pub fn ctr_table(&self, secret: &str, extra: &str) -> String {
        let base = self.sandbox.base_url();
        format!(
            "[connectors.ctr]\nbase_url = \"{base}\"\ntoken_url = \"{base}/v1/token\"\n\
             client_id = \"{}\"\nclient_secret = \"{secret}\"\nrate_limit_per_minute = 0\n{extra}",
            kri_sandbox::ctr::DEMO_CLIENT_ID
        )
    }

    /// Every row of every table of the store, as text (for "no secret anywhere" checks).
    pub async fn dump_store(&self) -> String {
        dump_store(&self.db()).await
    }

    /// `kri --config CFG run --only MODULE --output json`.
    pub async fn run_only(&self, cfg: &std::path::Path, module: &str, envs: &[(&str, &str)]) -> Outcome {
        let cfg = cfg.to_str().expect("utf-8 path");
        self.run(&["--config", cfg, "run", "--only", module, "--output", "json"], envs)
            .await
    }

    /// Run `kri ARGS` in the temp dir with a clean `KRI_*` environment plus `envs`, at the
    /// sandbox's "now".
    pub async fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> Outcome {
        let now = self.now.lock().unwrap().to_rfc3339();
        let mut all = vec![("KRI_TEST_NOW", now.as_str())];
        all.extend_from_slice(envs);
        run_kri(self.dir.path(), args, &all).await
    }
}

pub async fn run_kri(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Outcome {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kri"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        // The machine's proxy settings are not the test's: tests that want one set it.
        let proxy = ["https_proxy", "http_proxy", "all_proxy", "no_proxy"].contains(&k.to_ascii_lowercase().as_str());
        if k.starts_with("KRI_") || proxy {
            cmd.env_remove(k);
        }
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("kri runs");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The KRI object for `slug` in a `kri run --output json` answer.
pub fn kri<'a>(run: &'a Value, slug: &str) -> &'a Value {
    run["connectors"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["kris"].as_array().into_iter().flatten())
        .find(|k| k["slug"] == slug)
        .unwrap_or_else(|| panic!("{slug} not in {run}"))
}

pub fn connector<'a>(run: &'a Value, module: &str) -> &'a Value {
    run["connectors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["module"] == module)
        .unwrap_or_else(|| panic!("{module} not in {run}"))
}

/// The module keys of a `kri run --output json` answer, in order.
pub fn modules(run: &Value) -> Vec<String> {
    run["connectors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["module"].as_str())
        .map(str::to_owned)
        .collect()
}

/// Every row of every table of the store at `path`, as text, plus the raw bytes of its files.
pub async fn dump_store(path: &std::path::Path) -> String {
    let store = kri_core::Store::open(path).expect("store opens");
    let rows = store
        .call("dump", |c| {
            let tables: Vec<String> = c
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for t in tables {
                let cols: Vec<String> = c
                    .prepare(&format!("PRAGMA table_info({t})"))?
                    .query_map([], |r| r.get(1))?
                    .collect::<Result<_, _>>()?;
                let expr = cols
                    .iter()
                    .map(|c| format!("quote({c})"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                let rows: Vec<String> = c
                    .prepare(&format!("SELECT {expr} FROM {t}"))?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                out.push(format!("[{t}]"));
                out.extend(rows);
            }
            Ok(out)
        })
        .await
        .expect("store dump");
    let mut text = rows.join("\n");
    for suffix in ["", "-wal"] {
        let file = format!("{}{suffix}", path.display());
        if let Ok(bytes) = std::fs::read(&file) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

/// `promtool check metrics` on an exposition: it must pass with nothing to say.
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write;
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is not installed: apt-get install prometheus (Debian), as .ci/run does");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let checked = promtool.wait_with_output().expect("promtool runs");
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}
