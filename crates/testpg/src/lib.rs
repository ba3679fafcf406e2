//! A throw-away PostgreSQL server for tests: a real server, never a mock (see README.md).

use std::path::{Path, PathBuf};
use std::process::Command;

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
        if let Ok(url) = std::env::var("KRI_TEST_DATABASE_URL")
            && !url.trim().is_empty()
        {
            return Ok(TestPg { url, cluster: None });
        }
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
        let pg_ctl = bin.join("pg_ctl");
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            dir.path().display()
        );
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

impl Drop for TestPg {
    fn drop(&mut self) {
        if let Some(c) = &self.cluster {
            let mut stop = as_user(&c.pg_ctl, c.run_as_postgres);
            stop.arg("-D").arg(&c.data).args(["-m", "immediate", "-w", "stop"]);
            let _ = stop.output();
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
}
