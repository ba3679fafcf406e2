//! A throw-away PostgreSQL server for tests: a real server, never a mock (see README.md).

use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;

/// A running test server. Dropping it stops the server and removes its files.
pub struct TestPg {
    /// `postgres://kri@127.0.0.1:PORT/postgres`, or `KRI_TEST_DATABASE_URL`.
    pub url: String,
    /// The cluster this test started (none for `KRI_TEST_DATABASE_URL`).
    cluster: Option<Cluster>,
}

struct Cluster {
    pg_ctl: PathBuf,
    data: PathBuf,
    run_as_postgres: bool,
    /// Removed last, after the server stopped.
    _dir: tempfile::TempDir,
}

impl TestPg {
    /// `KRI_TEST_DATABASE_URL`, or a new cluster on a free port. The error says what is missing.
    pub fn start() -> Result<TestPg, String> {
        Self::start_with(&[])
    }

    /// [`TestPg::start`], the new cluster with server settings of its own (`("shared_buffers",
    /// "2GB")`): a benchmark sizes the server as production would.
    pub fn start_with(settings: &[(&str, &str)]) -> Result<TestPg, String> {
        if let Ok(url) = std::env::var("KRI_TEST_DATABASE_URL")
            && !url.trim().is_empty()
        {
            return Ok(TestPg { url, cluster: None });
        }
        Self::cluster(settings, None)
    }

    /// A new cluster (never `KRI_TEST_DATABASE_URL`) with `ssl = on`, serving `cert_pem` with
    /// `key_pem`, that accepts TCP connections only over TLS (`hostssl` in pg_hba.conf, and
    /// `hostnossl … reject`): a client that does not encrypt is refused.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Result<TestPg, String> {
        Self::cluster(&[("ssl", "on")], Some((cert_pem, key_pem)))
    }

    fn cluster(settings: &[(&str, &str)], tls: Option<(&str, &str)>) -> Result<TestPg, String> {
        let bin = bin_dir().ok_or(
            "no PostgreSQL server here: install the `postgresql` package (initdb, pg_ctl), or set \
             KRI_TEST_DATABASE_URL to a server the tests may use",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("kri-pg-")
            .tempdir()
            .map_err(|e| format!("cannot make a folder for the test cluster: {e}"))?;
        let run_as_postgres = is_root();
        if run_as_postgres {
            // PostgreSQL refuses to run as root: the cluster belongs to `postgres`.
            run(
                Command::new("chown").args(["postgres:", &dir.path().display().to_string()]),
                "chown",
            )?;
        }
        let data = dir.path().join("data");
        let port = free_port()?;
        let initdb = bin.join("initdb");
        let mut init = as_user(&initdb, run_as_postgres);
        init.arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "kri", "-E", "UTF8", "--locale=C", "--no-sync"]);
        run(&mut init, "initdb")?;
        let mut settings: Vec<(String, String)> =
            settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if let Some((cert, key)) = tls {
            // In the data folder: it belongs to the server's user, and the key must be 0600.
            let (cert_file, key_file) = (data.join("server.crt"), data.join("server.key"));
            let hba =
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n";
            for (path, text) in [(&cert_file, cert), (&key_file, key), (&data.join("pg_hba.conf"), hba)] {
                write_private(path, text, run_as_postgres)?;
            }
            settings.push(("ssl_cert_file".into(), format!("'{}'", cert_file.display())));
            settings.push(("ssl_key_file".into(), format!("'{}'", key_file.display())));
        }
        let pg_ctl = bin.join("pg_ctl");
        let mut options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            dir.path().display()
        );
        for (key, value) in &settings {
            options.push_str(&format!(" -c {key}={value}"));
        }
        let mut start = as_user(&pg_ctl, run_as_postgres);
        start
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(dir.path().join("server.log"))
            .args(["-w", "-t", "60", "start"]);
        run(&mut start, "pg_ctl start").map_err(|e| {
            let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })?;
        Ok(TestPg {
            url: format!("postgres://kri@127.0.0.1:{port}/postgres"),
            cluster: Some(Cluster {
                pg_ctl,
                data,
                run_as_postgres,
                _dir: dir,
            }),
        })
    }
}

impl TestPg {
    /// One server for the whole test binary, started on first use (each test makes its own
    /// database on it). A static is never dropped, so a watchdog process stops the server and
    /// removes its folder when this process ends, however it ends (tests passed, failed,
    /// aborted, interrupted): it waits for the end of a pipe that only this process holds open
    /// (the kernel closes it at exit; children never inherit it) and ignores Ctrl-C itself.
    pub fn shared() -> Result<&'static TestPg, String> {
        static SHARED: OnceLock<Result<(TestPg, Option<ChildStdin>), String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let pg = TestPg::start()?;
                let watchdog = pg.stop_when_this_process_ends()?;
                Ok((pg, watchdog))
            })
            .as_ref()
            .map(|(pg, _)| pg)
            .map_err(Clone::clone)
    }

    /// Start the watchdog of [`TestPg::shared`]; it holds the pipe's other end.
    fn stop_when_this_process_ends(&self) -> Result<Option<ChildStdin>, String> {
        let Some(c) = &self.cluster else { return Ok(None) };
        let mut watchdog = Command::new("sh");
        watchdog
            .args([
                "-c",
                "trap '' INT TERM HUP; cat >/dev/null; \"$@\"; rm -rf -- \"$KRI_TESTPG_DIR\"",
                "kri-testpg-watchdog",
            ])
            .args(c.stop_argv())
            .env("KRI_TESTPG_DIR", c._dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = watchdog
            .spawn()
            .map_err(|e| format!("cannot start the watchdog that stops the test server: {e}"))?;
        Ok(child.stdin.take())
    }
}

impl Cluster {
    /// `pg_ctl stop`, immediately, as the cluster's owner.
    fn stop_argv(&self) -> Vec<std::ffi::OsString> {
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if self.run_as_postgres {
            argv.extend(["runuser", "-u", "postgres", "--"].map(Into::into));
        }
        argv.push(self.pg_ctl.clone().into());
        argv.extend(["-D".into(), self.data.clone().into()]);
        argv.extend(["-m", "immediate", "-w", "stop"].map(Into::into));
        argv
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        if let Some(c) = &self.cluster {
            let argv = c.stop_argv();
            if let Some((program, args)) = argv.split_first() {
                let _ = Command::new(program).args(args).output();
            }
        }
    }
}

/// The newest `/usr/lib/postgresql/N/bin` with initdb and pg_ctl, else the folder of `initdb` on PATH.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists()))
}

fn is_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(unix))]
    false
}

fn as_user(program: &Path, postgres: bool) -> Command {
    if postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Write `text` to `path`, mode 0600, owned by `postgres` when the server runs as that user.
fn write_private(path: &Path, text: &str, postgres: bool) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    std::fs::write(path, text).map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
    }
    if postgres {
        run(
            Command::new("chown").args(["postgres:", &path.display().to_string()]),
            "chown",
        )?;
    }
    Ok(())
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real server answers; two at once do not collide; a dropped one is gone.
    #[test]
    fn a_throw_away_server_answers_and_goes_away() {
        let a = TestPg::start().expect("a test server");
        let b = TestPg::start().expect("a second test server");
        assert_ne!(a.url, b.url);
        for pg in [&a, &b] {
            let out = Command::new("psql")
                .args([pg.url.as_str(), "-tAc", "SELECT 1 + 1"])
                .output()
                .expect("psql runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2", "{out:?}");
        }
        let url = b.url.clone();
        drop(b);
        let out = Command::new("psql")
            .args([url.as_str(), "-tAc", "SELECT 1"])
            .output()
            .expect("psql runs");
        assert!(!out.status.success(), "the dropped server still answers");
    }

    /// The shared server outlives no test binary: a child process (this binary, running only
    /// `shared_server_of_a_child`) starts it and ends; the server then goes away with its folder.
    #[test]
    fn the_shared_server_stops_when_its_process_ends() {
        if std::env::var_os("KRI_TEST_DATABASE_URL").is_some() {
            return;
        }
        let out = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--ignored", "--exact", "tests::shared_server_of_a_child", "--nocapture"])
            .env("KRI_TESTPG_CHILD", "1")
            .output()
            .expect("the child runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout
            .lines()
            .find_map(|l| l.strip_prefix("shared url: "))
            .unwrap_or_else(|| panic!("no url from the child: {stdout}"));
        let answers = || {
            Command::new("psql")
                .args([url, "-tAc", "SELECT 1"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while answers() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(
            !answers(),
            "the shared server of {url} still answers after its process ended"
        );
    }

    #[test]
    #[ignore = "run by the_shared_server_stops_when_its_process_ends in a child process"]
    fn shared_server_of_a_child() {
        if std::env::var_os("KRI_TESTPG_CHILD").is_none() {
            return;
        }
        let pg = TestPg::shared().expect("a shared server");
        assert!(std::ptr::eq(pg, TestPg::shared().expect("the same server")));
        let out = Command::new("psql")
            .args([pg.url.as_str(), "-tAc", "SELECT 1"])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "{out:?}");
        println!("shared url: {}", pg.url);
    }
}
