//! Bad config is refused with exit 2 before any network call, naming the key and the fix.

use crate::helper::{Kri, run_kri};

#[tokio::test(flavor = "multi_thread")]
async fn ctr_max_fetch_500_is_exit_2_before_any_call() {
    let k = Kri::default().await;
    let cfg = k.config("[connectors.ctr]\nmax_fetch = 500\n");
    let out = k.run(&["--config", cfg.to_str().unwrap(), "run"], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("connectors.ctr.max_fetch") && out.stderr.contains("1..=200"),
        "{out:?}"
    );
    assert!(out.stderr.contains("kri.toml"), "names the file: {out:?}");
    assert!(
        k.sandbox.all_hits().is_empty(),
        "no network call: {:?}",
        k.sandbox.all_hits()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_without_a_colon_are_exit_2_with_the_fix() {
    let k = Kri::default().await;
    let cfg = k.config_with(Some(""), "");
    let out = k
        .run(
            &["--config", cfg.to_str().unwrap(), "run"],
            &[("KRI_PROOFPOINT__CREDENTIALS", "nocolonsecret")],
        )
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("principal:secret") && out.stderr.contains("colon"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("KRI_PROOFPOINT__CREDENTIALS"),
        "names where it was set: {out:?}"
    );
    assert!(
        !out.all().contains("nocolonsecret"),
        "the value is never echoed: {out:?}"
    );
    assert!(k.sandbox.all_hits().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_numeric_looking_secret_from_the_environment_is_kept_as_text() {
    let k = Kri::default().await;
    let cfg = k.config_with(
        Some(""),
        "[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n",
    );
    // figment parses `12345` as a number: the secret must still be "12345", not fail to parse.
    let out = k
        .run(
            &["--config", cfg.to_str().unwrap(), "run"],
            &[("KRI_CONNECTORS__TAP__CREDENTIALS", "demo-principal:12345")],
        )
        .await;
    assert_eq!(
        out.code, 1,
        "reaches the API (and gets 401 for the wrong secret): {out:?}"
    );
    assert!(out.stdout.contains("HTTP 401"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_keys_name_the_key_and_the_file() {
    let k = Kri::default().await;
    let cfg = k.config("[connectors.efd]\ncount_quarantine = true\n");
    let out = k.run(&["--config", cfg.to_str().unwrap(), "run"], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("connectors.efd.count_quarantine"), "{out:?}");
    assert!(
        out.stderr.contains("count_quarantine_as_enforced"),
        "lists the accepted keys: {out:?}"
    );
    assert!(out.stderr.contains(&cfg.display().to_string()), "{out:?}");

    let env = k
        .run(
            &["--config", cfg.to_str().unwrap(), "kris"],
            &[("KRI_STORE__PATHS", "x")],
        )
        .await;
    assert_eq!(env.code, 2, "{env:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_schedule_is_exit_2() {
    let k = Kri::default().await;
    let cfg = k.config("[connectors.tap]\nschedule = \"sometimes\"\n");
    let out = k.run(&["--config", cfg.to_str().unwrap(), "kris"], &[]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("connectors.tap.schedule"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_explicit_config_file_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_kri(dir.path(), &["--config", "nope.toml", "run"], &[]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("`nope.toml` not found"), "{out:?}");
    let out = run_kri(dir.path(), &["run"], &[]).await;
    assert_eq!(out.code, 2, "no kri.toml and no credentials: {out:?}");
    assert!(
        out.stderr.contains("no config") && out.stderr.contains("kri.toml") && out.stderr.contains("kri init"),
        "{out:?}"
    );
    // With some settings in the environment, the missing credentials are named.
    let out = run_kri(dir.path(), &["run"], &[("KRI_CONNECTORS__TAP__SCHEDULE", "hourly")]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("KRI_PROOFPOINT__CREDENTIALS") && out.stderr.contains("kri init"),
        "{out:?}"
    );
}

/// Relative paths are relative to the config file, everywhere; a read command without any
/// config says so (exit 2), and with one names the config and store it read.
#[tokio::test(flavor = "multi_thread")]
async fn relative_paths_follow_the_config_file_and_read_commands_say_what_they_read() {
    let k = Kri::default().await;
    let conf = k.dir.path().join("conf");
    std::fs::create_dir_all(conf.join("secrets")).unwrap();
    std::fs::write(conf.join("secrets/pp"), format!("{}\n", k.sandbox.credentials())).unwrap();
    let cfg = conf.join("kri.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\npath = \"data/kri.db\"\n[proofpoint]\nbase_url = \"{}\"\ncredentials_file = \"secrets/pp\"\n\
             [connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n",
            k.sandbox.base_url()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let now = k.now().to_rfc3339();
    let envs = [("KRI_TEST_NOW", now.as_str())];
    let at = |dir: &std::path::Path, args: &[&str]| {
        let (dir, args) = (dir.to_owned(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_kri(&dir, &args, &envs).await
        }
    };

    // Nothing collected yet: the message names the store and the config it came from.
    let out = at(elsewhere.path(), &["--config", cfg, "values"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("No values stored yet in")
            && out.stdout.contains(&conf.join("data/kri.db").display().to_string())
            && out.stdout.contains(cfg),
        "{out:?}"
    );
    // The run, from another folder, writes the store beside the config and reads the secret file there.
    let out = at(elsewhere.path(), &["--config", cfg, "run", "--only", "tap"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(conf.join("data/kri.db").exists() && !elsewhere.path().join("data").exists());
    let out = at(elsewhere.path(), &["--config", cfg, "values", "pp_vap_count"]).await;
    assert!(out.stdout.contains("pp_vap_count"), "{out:?}");

    // No config at all: a read command says there is nothing to read from (exit 2).
    let empty = tempfile::tempdir().unwrap();
    for args in [&["values"][..], &["history"]] {
        let out = at(empty.path(), args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("no config") && out.stderr.contains("--config FILE"),
            "{out:?}"
        );
    }
}
