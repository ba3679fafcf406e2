//! No secret in any output, even at RUST_LOG=debug/trace, on success and on failure.

use crate::helper::Kri;

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_appears_at_debug_or_trace() {
    let k = Kri::default().await;
    let secret = kri_sandbox::DEMO_SECRET;
    // base64("demo-principal:demo-secret"), the Authorization header's payload.
    let header = "ZGVtby1wcmluY2lwYWw6ZGVtby1zZWNyZXQ=";
    let cfg = k.config_with(Some(""), "");
    let creds = k.sandbox.credentials();
    for level in ["debug", "trace"] {
        for (args, envs) in [
            (
                vec!["run", "--output", "json"],
                vec![("KRI_PROOFPOINT__CREDENTIALS", creds.as_str())],
            ),
            (
                vec!["run", "-vv"],
                vec![("KRI_PROOFPOINT__CREDENTIALS", creds.as_str())],
            ),
            (vec!["test"], vec![("KRI_PROOFPOINT__CREDENTIALS", creds.as_str())]),
            (
                vec!["run"],
                vec![("KRI_PROOFPOINT__CREDENTIALS", "demo-principal:wrong-demo-secret")],
            ),
        ] {
            let mut all_args = vec!["--config", cfg.to_str().unwrap()];
            all_args.extend(args.iter());
            let mut envs = envs.clone();
            envs.push(("RUST_LOG", level));
            let out = k.run(&all_args, &envs).await;
            assert!(!out.stderr.is_empty(), "logging is on at {level}");
            let all = out.all();
            for leaked in [secret, header, "wrong-demo-secret"] {
                assert!(
                    !all.contains(leaked),
                    "`{leaked}` leaked at {level} with {args:?}:\n{all}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_output_shows_no_secret() {
    let k = Kri::default().await;
    let out = k.run(&["demo"], &[("RUST_LOG", "debug")]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.all().contains(kri_sandbox::DEMO_SECRET));
    assert!(!out.all().contains(kri_sandbox::ctr::DEMO_CLIENT_SECRET));
}

/// Container secrets: `credentials_file`, `client_secret_file`, `[serve] token_file` hold the
/// secret; a missing or empty file, or both forms at once, is a config error naming the key and
/// the path, never the content.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_can_come_from_files() {
    let k = Kri::default().await;
    let dir = k.dir.path();
    std::fs::write(dir.join("pp"), format!("{}\n", k.sandbox.credentials())).unwrap();
    std::fs::write(dir.join("ctr"), kri_sandbox::ctr::DEMO_CLIENT_SECRET).unwrap();
    std::fs::write(dir.join("empty"), "\n").unwrap();
    let base = k.sandbox.base_url();
    let ctr = format!(
        "[connectors.ctr]\nenabled = true\nbase_url = \"{base}\"\ntoken_url = \"{base}/v1/token\"\nclient_id = \"{}\"\n\
         client_secret_file = \"{}\"\nrate_limit_per_minute = 0\n",
        kri_sandbox::ctr::DEMO_CLIENT_ID,
        dir.join("ctr").display()
    );
    let cfg = k.config_with(
        Some(""),
        &format!(
            "credentials_file = \"{}\"\n{ctr}[serve]\ntoken_file = \"{}\"\n",
            dir.join("pp").display(),
            dir.join("pp").display()
        ),
    );
    let out = k
        .run(&["--config", cfg.to_str().unwrap(), "run", "--output", "json"], &[])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let check = k
        .run(
            &["--config", cfg.to_str().unwrap(), "config", "check", "--output", "json"],
            &[],
        )
        .await;
    assert_eq!(check.code, 0, "{check:?}");
    for secret in [k.sandbox.credentials(), kri_sandbox::ctr::DEMO_CLIENT_SECRET.to_owned()] {
        assert!(
            !out.all().contains(&secret) && !check.all().contains(&secret),
            "a file's secret leaked"
        );
    }

    let bad = [
        (
            format!("credentials_file = \"{}\"\n", dir.join("nope").display()),
            "proofpoint.credentials_file",
            "nope",
        ),
        (
            format!("credentials_file = \"{}\"\n", dir.join("empty").display()),
            "proofpoint.credentials_file",
            "empty",
        ),
        (
            format!(
                "credentials = \"a:b\"\ncredentials_file = \"{}\"\n",
                dir.join("pp").display()
            ),
            "proofpoint.credentials_file",
            "not both",
        ),
    ];
    for (extra, key, says) in bad {
        let cfg = k.config_with(Some(""), &extra);
        let out = k.run(&["--config", cfg.to_str().unwrap(), "run"], &[]).await;
        assert_eq!(out.code, 2, "{extra}: {out:?}");
        assert!(
            out.stderr.contains(key) && out.stderr.contains(says),
            "{extra}: {}",
            out.stderr
        );
    }
}
