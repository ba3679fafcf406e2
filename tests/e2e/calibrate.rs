//! `kri calibrate`: thresholds suggested from the stored history, only once there is enough of
//! it, as JSON, a table, or `[kris.SLUG]` snippets that load as they are.

use serde_json::Value;

use crate::helper::Kri;

fn vap(out: &Value) -> Value {
    out["kris"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["slug"] == "pp_vap_count"))
        .cloned()
        .unwrap_or_else(|| panic!("pp_vap_count calibrated: {out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn thresholds_are_suggested_from_fourteen_values_on_and_paste_as_they_are() {
    let k = Kri::default().await;
    let cfg = k.config("");
    let cfg = cfg.to_str().unwrap();
    let nothing = k.run(&["--config", cfg, "calibrate"], &[]).await;
    assert_eq!(nothing.code, 1, "no store yet: {nothing:?}");
    assert!(nothing.stderr.contains("kri run"), "{nothing:?}");
    for _ in 0..13 {
        assert_eq!(k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await.code, 0);
        k.advance(chrono::Duration::hours(1));
    }
    let out = k.run(&["--config", cfg, "calibrate", "--output", "json"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let v = vap(&out.json());
    assert_eq!((v["values"].as_u64(), v["suggested"].clone()), (Some(13), Value::Null));
    assert!(v["why_not"].as_str().is_some_and(|w| w.contains("14")), "{v}");
    assert_eq!(v["direction"], "higher-is-worse");
    assert_eq!(v["current"], serde_json::json!({"amber": 10.0, "red": 25.0}));

    assert_eq!(k.run(&["--config", cfg, "run", "--only", "tap"], &[]).await.code, 0);
    k.advance(chrono::Duration::hours(1));
    let v = vap(&k
        .run(&["--config", cfg, "calibrate", "pp_vap_count", "--output", "json"], &[])
        .await
        .json());
    assert_eq!(v["values"], 14);
    // Every value was 12: both percentiles are 12, and 14 hours were amber under 10 / 25.
    assert_eq!(v["suggested"], serde_json::json!({"amber": 12.0, "red": 12.0}));
    assert_eq!(v["days_in_band"]["current"]["amber"], 0.6);
    assert_eq!(v["days_in_band"]["suggested"]["red"], 0.6);
    assert_eq!(v["perpetual"], Value::Null, "not 30 days yet");

    // The snippet loads as it is.
    let toml = k
        .run(&["--config", cfg, "calibrate", "pp_vap_count", "--toml"], &[])
        .await;
    assert_eq!(toml.code, 0, "{toml:?}");
    assert!(toml.stdout.contains("[kris.pp_vap_count]"), "{toml:?}");
    let pasted = k.config(&toml.stdout);
    let check = k
        .run(&["--config", pasted.to_str().unwrap(), "config", "check"], &[])
        .await;
    assert_eq!(check.code, 0, "{check:?}");
    let table = k.run(&["--config", cfg, "calibrate"], &[]).await;
    assert!(
        table.stdout.contains("pp_vap_count") && table.stderr.contains("95th"),
        "{table:?}"
    );
    let unknown = k.run(&["--config", cfg, "calibrate", "pp_nope"], &[]).await;
    assert_eq!(unknown.code, 2, "{unknown:?}");
}

/// A KRI that sat in one band for 30 days is flagged: by `kri kris` and `kri calibrate`.
#[tokio::test(flavor = "multi_thread")]
async fn a_kri_amber_for_thirty_days_is_flagged_perpetual() {
    let k = Kri::default().await;
    let cfg = k.config("");
    let cfg = cfg.to_str().unwrap();
    for _ in 0..31 {
        assert_eq!(k.run(&["--config", cfg, "run", "--only", "efd"], &[]).await.code, 0);
        k.advance(chrono::Duration::days(1));
    }
    let kris = k.run(&["--config", cfg, "kris", "--output", "json"], &[]).await.json();
    let dmarc = kris["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["kris"].as_array().unwrap().iter())
        .find(|k| k["slug"] == "pp_dmarc_enforcement_pct")
        .cloned()
        .unwrap();
    assert_eq!(dmarc["perpetual"], "amber", "{dmarc}");
    let table = k.run(&["--config", cfg, "kris"], &[]).await;
    assert!(
        table
            .stderr
            .contains("pp_dmarc_enforcement_pct: amber for 30 days or more"),
        "{table:?}"
    );
    let c = k
        .run(
            &[
                "--config",
                cfg,
                "calibrate",
                "pp_dmarc_enforcement_pct",
                "--output",
                "json",
            ],
            &[],
        )
        .await
        .json();
    assert_eq!(c["kris"][0]["perpetual"], "amber", "{c}");
    assert_eq!(c["kris"][0]["values"], 31);
}
