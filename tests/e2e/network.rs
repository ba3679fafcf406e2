//! Real networks: an API whose certificate is signed by the user's own CA (`ca_file`), and a
//! real forward proxy (`proxy`, or the environment's `HTTPS_PROXY` / `NO_PROXY`), with the
//! sandbox behind a TLS front that serves a certificate made in the test.

use kri_testtls::{TestCa, Tinyproxy, TlsFront};

use crate::helper::{Kri, Outcome};

/// The sandbox behind `https://localhost:PORT`, its certificate signed by a CA of the test's.
async fn behind_tls() -> (Kri, TestCa, TlsFront) {
    let kri = Kri::default().await;
    let ca = TestCa::new("kri test corporate CA");
    let backend = kri
        .sandbox
        .base_url()
        .trim_start_matches("http://")
        .parse()
        .expect("the sandbox's address");
    let front = TlsFront::start(backend, &ca.server(&["localhost"])).await;
    ca.write(kri.dir.path(), "corp-ca.pem");
    (kri, ca, front)
}

async fn probe(kri: &Kri, cfg: &std::path::Path, envs: &[(&str, &str)]) -> Outcome {
    kri.run(&["--config", cfg.to_str().unwrap(), "test", "tap"], envs).await
}

#[tokio::test]
async fn ca_file_trusts_the_users_ca_besides_the_systems_and_nothing_else_does() {
    let (kri, _ca, front) = behind_tls().await;
    TestCa::new("someone else's CA").write(kri.dir.path(), "other-ca.pem");
    std::fs::write(kri.dir.path().join("not-pem.txt"), "hello").unwrap();

    // Not trusted: the run fails and says how to trust the CA.
    let cfg = kri.config_for(&front.url(), "");
    let out = probe(&kri, &cfg, &[]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.all().contains("certificate") && out.all().contains("ca_file"),
        "{out:?}"
    );

    // `[proofpoint] ca_file`, relative to the config file's folder (kri runs elsewhere).
    let cfg = kri.config_for(&front.url(), "ca_file = \"corp-ca.pem\"\n");
    let elsewhere = tempfile::tempdir().unwrap();
    let out = crate::helper::run_kri(
        elsewhere.path(),
        &["--config", cfg.to_str().unwrap(), "test", "tap"],
        &[("KRI_TEST_NOW", &kri.now().to_rfc3339())],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");

    // A connector's own ca_file wins over its family's: another CA is not enough.
    let cfg = kri.config_for(
        &front.url(),
        "ca_file = \"corp-ca.pem\"\n[connectors.tap]\nca_file = \"other-ca.pem\"\n",
    );
    assert_eq!(probe(&kri, &cfg, &[]).await.code, 1);

    // A file that is missing or not PEM is a config error naming the key, before any request.
    for (file, says) in [("missing.pem", "cannot read"), ("not-pem.txt", "holds no certificate")] {
        let cfg = kri.config_for(&front.url(), &format!("[connectors.tap]\nca_file = \"{file}\"\n"));
        let out = probe(&kri, &cfg, &[]).await;
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.stderr.contains("connectors.tap.ca_file") && out.stderr.contains(says) && out.stderr.contains(file),
            "{out:?}"
        );
    }
}

#[tokio::test]
async fn requests_go_through_the_named_proxy_or_the_environments() {
    let (kri, _ca, front) = behind_tls().await;
    let proxy = Tinyproxy::start().expect("tinyproxy (Debian package `tinyproxy`)");
    let port = front.addr.port();
    let connects = || proxy.log().matches(&format!("CONNECT localhost:{port}")).count();
    let dead = "http://127.0.0.1:9";

    // `proxy` in the connector's table: HTTPS goes through it with CONNECT.
    let cfg = kri.config_for(
        &front.url(),
        &format!(
            "ca_file = \"corp-ca.pem\"\n[connectors.tap]\nproxy = \"{}\"\n",
            proxy.url()
        ),
    );
    let out = probe(&kri, &cfg, &[("HTTPS_PROXY", dead)]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(connects(), 1, "{}", proxy.log());

    // No `proxy` key: HTTPS_PROXY from the environment…
    let cfg = kri.config_for(&front.url(), "ca_file = \"corp-ca.pem\"\n");
    let out = probe(&kri, &cfg, &[("HTTPS_PROXY", &proxy.url())]).await;
    assert_eq!((out.code, connects()), (0, 2), "{out:?}");
    // …unless NO_PROXY names the host.
    let out = probe(&kri, &cfg, &[("HTTPS_PROXY", dead), ("NO_PROXY", "localhost")]).await;
    assert_eq!(out.code, 0, "{out:?}");
    // A dead proxy from the environment is really used (and fails, naming the endpoint).
    let out = probe(&kri, &cfg, &[("https_proxy", dead)]).await;
    assert_eq!(out.code, 1, "{out:?}");

    // `proxy = "none"`: direct, whatever the environment says.
    let cfg = kri.config_for(&front.url(), "ca_file = \"corp-ca.pem\"\nproxy = \"none\"\n");
    let out = probe(&kri, &cfg, &[("HTTPS_PROXY", dead)]).await;
    assert_eq!((out.code, connects()), (0, 2), "{out:?}");

    // Plain HTTP through the proxy, with credentials in its URL: forwarded, the password
    // shown nowhere (output, store).
    let secret = "pr0xy-s3cret";
    let cfg = kri.config(&format!("proxy = \"http://kri:{secret}@127.0.0.1:{}\"\n", proxy.port));
    let out = kri.run_only(&cfg, "tap", &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let sandbox = kri.sandbox.base_url();
    assert!(
        proxy.log().contains(&format!("GET {sandbox}/v2/people/vap")),
        "{}",
        proxy.log()
    );
    assert!(!out.all().contains(secret) && !kri.dump_store().await.contains(secret));

    // Only HTTP proxies, and a bad one is refused before any request, without its password.
    for (value, says) in [
        (
            format!("socks5://kri:{secret}@127.0.0.1:1080"),
            "socks5:// proxy is not supported",
        ),
        ("not a url".to_owned(), "is not a proxy URL"),
    ] {
        let cfg = kri.config(&format!("[connectors.tap]\nproxy = \"{value}\"\n"));
        let out = probe(&kri, &cfg, &[]).await;
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.stderr.contains("connectors.tap.proxy") && out.stderr.contains(says),
            "{out:?}"
        );
        assert!(!out.all().contains(secret), "{out:?}");
    }
}

/// A host name that does not resolve: the error names the host and the key that set it, says
/// what to try, is not retried, stops the pool at once, and the log has a line or two, not
/// dozens.
#[tokio::test]
async fn a_host_that_does_not_resolve_is_named_with_its_key_and_not_retried() {
    let k = Kri::default().await;
    let cfg = k.config_for(
        "https://tap-api.no-such-host.invalid",
        "[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n",
    );
    let out = k.run_only(&cfg, "tap", &[]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let run = out.json();
    let tap = crate::helper::connector(&run, "tap");
    let vap = crate::helper::kri(&run, "pp_vap_count")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        vap.contains("`tap-api.no-such-host.invalid`")
            && vap.contains("proofpoint.base_url")
            && vap.contains("does not resolve"),
        "{vap}"
    );
    // Each pool tried at most as many requests as it had in flight, none retried.
    assert!(tap["api_calls"].as_u64().unwrap() <= 12, "{tap}");
    assert!(!out.stderr.contains("retrying"), "{}", out.stderr);
    let warnings = out.stderr.lines().filter(|l| l.contains("WARN")).count();
    assert!(warnings <= 6, "{warnings} WARN lines:\n{}", out.stderr);
}
