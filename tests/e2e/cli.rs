//! `kri demo`, `kri kris`, `--help`: what a newcomer sees first.

use crate::helper::{Kri, run_kri};

#[tokio::test(flavor = "multi_thread")]
async fn demo_prints_the_kri_table_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_kri(dir.path(), &["demo"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    for needle in [
        "pp_vap_count",
        "pp_dmarc_enforcement_pct",
        "pp_reported_phish_fn_rate_pct",
        "12",
        "60",
        "7.50",
    ] {
        assert!(out.stdout.contains(needle), "missing {needle}: {}", out.stdout);
    }
    assert!(out.stderr.contains("sandbox"), "{out:?}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the demo leaves no store behind"
    );
    let json = run_kri(dir.path(), &["demo", "--output", "json"], &[]).await;
    assert_eq!(json.code, 0);
    assert_eq!(
        json.json()["connectors"].as_array().unwrap().len(),
        4,
        "tap, efd, clear and ctr"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kris_json_lists_every_connector_and_kri() {
    let k = Kri::default().await;
    let cfg = k.config("[connectors.tap]\nkris = []\n[thresholds.pp_vap_count]\namber = 5\nred = 9\n");
    let out = k
        .run(&["--config", cfg.to_str().unwrap(), "kris", "--output", "json"], &[])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    // The connectors this snapshot pins; a connector added later is covered by its own tests.
    let mut kris = out.json();
    if let Some(all) = kris["connectors"].as_array_mut() {
        all.retain(|c| ["clear", "ctr", "efd", "tap"].contains(&c["module"].as_str().unwrap_or("")));
    }
    insta::assert_json_snapshot!("kris", kris);
    let table = k.run(&["--config", cfg.to_str().unwrap(), "kris"], &[]).await;
    assert!(table.stdout.contains("LOWER"), "direction shown: {}", table.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn kris_works_without_any_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_kri(dir.path(), &["kris"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("pp_vap_count"));
}

#[tokio::test(flavor = "multi_thread")]
async fn help_teaches_the_commands_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_kri(dir.path(), &["--help"], &[]).await;
    assert_eq!(out.code, 0);
    for needle in [
        "demo",
        "run",
        "test",
        "kris",
        "history",
        "values",
        "daemon",
        "Exit codes",
        "KRI_CONNECTORS__",
        // From the registry: the connectors and the shared tables this binary links.
        "Connectors",
        "ctr ",
        "[proofpoint]",
        "KRI_TABLE__KEY",
    ] {
        assert!(out.stdout.contains(needle), "--help lacks {needle}: {}", out.stdout);
    }
    let bad = run_kri(dir.path(), &["frobnicate"], &[]).await;
    assert_eq!(bad.code, 2, "usage errors are exit 2");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn daemon_runs_each_connector_then_stops_cleanly_on_sigterm() {
    let k = Kri::default().await;
    let cfg = k.config("[connectors.tap]\nschedule = \"1m\"\nkris = [\"pp_vap_count\"]\n");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kri"))
        .args(["--config", cfg.to_str().unwrap(), "daemon", "--output", "json"])
        .current_dir(k.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("daemon starts");
    // Every enabled connector runs once at start; wait for the three runs to be served.
    for _ in 0..100 {
        if k.sandbox.hits("/v2/people/vap") >= 1 && k.sandbox.hits("/v2/clear/reports/summary") >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let pid = child.id().expect("running").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("stops")
        .unwrap();
    assert_eq!(status.code(), Some(0), "a clean stop on SIGTERM");
    assert_eq!(
        k.sandbox.hits("/v2/people/vap"),
        1,
        "one run per connector until the next schedule"
    );
    let history = k
        .run(&["--config", cfg.to_str().unwrap(), "history", "--output", "json"], &[])
        .await;
    let runs = history.json()["runs"].as_array().unwrap().len();
    assert_eq!(runs, 3, "{history:?}");
}

/// `kri … | head`: a reader that closed the pipe ends kri quietly, never with a panic
/// (exit 101). The read end is closed before kri starts, so every write meets the closed pipe.
#[test]
fn a_closed_stdout_ends_output_quietly() {
    use std::os::fd::{FromRawFd, OwnedFd};
    for args in [
        &["completions", "zsh"][..],
        &["man"],
        &["kris", "--output", "json"],
        &["kris"],
    ] {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills both descriptors; each is owned exactly once below.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(read);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kri"))
            .args(args)
            .stdout(std::process::Stdio::from(write))
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("kri runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "kri {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "kri {args:?}: {stderr}");
    }
}
