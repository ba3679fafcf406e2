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
