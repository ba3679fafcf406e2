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
    assert_eq!(json.json()["connectors"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn kris_json_lists_every_connector_and_kri() {
    let k = Kri::default().await;
    let cfg = k.config("[connectors.tap]\nkris = []\n[thresholds.pp_vap_count]\namber = 5\nred = 9\n");
    let out = k
        .run(&["--config", cfg.to_str().unwrap(), "kris", "--output", "json"], &[])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    insta::assert_json_snapshot!("kris", out.json());
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
        "KRI_PROOFPOINT__CREDENTIALS",
    ] {
        assert!(out.stdout.contains(needle), "--help lacks {needle}: {}", out.stdout);
    }
    let bad = run_kri(dir.path(), &["frobnicate"], &[]).await;
    assert_eq!(bad.code, 2, "usage errors are exit 2");
}
