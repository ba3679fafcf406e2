//! KRI practice through the binary: acknowledgements of a breach, who gave them and why, and
//! how they end.

use crate::helper::Kri;

#[tokio::test(flavor = "multi_thread")]
async fn an_amber_kri_is_acknowledged_with_a_note_and_cleared() {
    let k = Kri::default().await;
    let cfg = k.config("");
    let cfg = cfg.to_str().unwrap();
    let none = k
        .run(&["--config", cfg, "ack", "pp_vap_count", "--note", "seen"], &[])
        .await;
    assert_eq!(none.code, 1, "no store yet: {none:?}");
    assert_eq!(k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await.code, 0);
    // VAP is amber (12 at 10 / 25).
    let ack = k
        .run(
            &[
                "--config",
                cfg,
                "ack",
                "pp_vap_count",
                "--note",
                "known campaign, blocked at the gateway",
                "--until",
                "7d",
                "--by",
                "Ana",
                "--output",
                "json",
            ],
            &[],
        )
        .await;
    assert_eq!(ack.code, 0, "{ack:?}");
    let a = ack.json();
    assert_eq!(
        (a["band"].as_str(), a["by"].as_str(), a["note"].as_str()),
        (
            Some("amber"),
            Some("Ana"),
            Some("known campaign, blocked at the gateway")
        )
    );
    let until = chrono::DateTime::parse_from_rfc3339(a["until"].as_str().unwrap()).unwrap();
    assert_eq!(until.to_utc(), k.now() + chrono::Duration::days(7));
    // A green KRI has nothing to acknowledge; a note must be one line.
    let green = k
        .run(&["--config", cfg, "ack", "pp_bec_impostor_7d", "--note", "x"], &[])
        .await;
    assert_eq!(green.code, 1, "{green:?}");
    assert!(green.stderr.contains("is green"), "{green:?}");
    let two_lines = k
        .run(&["--config", cfg, "ack", "pp_vap_count", "--note", "a\nb"], &[])
        .await;
    assert_eq!(two_lines.code, 2, "{two_lines:?}");
    assert!(two_lines.stderr.contains("one line"), "{two_lines:?}");
    let no_note = k.run(&["--config", cfg, "ack", "pp_vap_count"], &[]).await;
    assert_eq!(no_note.code, 2, "{no_note:?}");
    let cleared = k.run(&["--config", cfg, "ack", "--clear", "pp_vap_count"], &[]).await;
    assert_eq!(cleared.code, 0, "{cleared:?}");
    assert!(cleared.stdout.contains("cleared"), "{cleared:?}");
    let again = k.run(&["--config", cfg, "ack", "--clear", "pp_vap_count"], &[]).await;
    assert!(again.stdout.contains("no acknowledgement"), "{again:?}");
}
