//! The whole `[connectors.ctr]` table of PRODUCT.md is accepted and validated.

use kri_connector_ctr::CtrConfig;
use kri_core::testing::settings;

fn parse(table: &str) -> Result<CtrConfig, kri_core::ConfigError> {
    CtrConfig::from_settings(&settings("ctr", table, None))
}

const FULL: &str = r#"
base_url = "https://threatprotection-api.proofpoint.com"
token_url = "https://auth.proofpoint.com/v1/token"
client_id = "id"
client_secret = "secret"
first_fetch = "3 days"
fetch_delta_minutes = 1
max_fetch = 50
fetch_states = ["open_incidents"]
enrich = false
"#;

#[test]
fn the_documented_table_parses() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.first_fetch.as_secs(), 3 * 86400);
    assert_eq!(
        (c.max_fetch, c.fetch_state.as_str(), c.enrich),
        (50, "open_incidents", false)
    );
}

#[test]
fn the_sample_config_parses() {
    let sample = include_str!("../sample.toml").replace("[connectors.ctr]", "");
    let sample: String = sample
        .lines()
        .filter(|l| !l.starts_with("enabled") && !l.starts_with("schedule"))
        .collect::<Vec<_>>()
        .join("\n");
    parse(&sample).unwrap();
}

#[test]
fn max_fetch_over_200_is_refused() {
    let e = parse(&FULL.replace("max_fetch = 50", "max_fetch = 500")).unwrap_err();
    assert_eq!(e.key, "connectors.ctr.max_fetch");
    assert!(e.message.contains("1..=200"), "{e}");
}

#[test]
fn open_and_closed_together_is_refused_with_the_reason() {
    let e = parse(&FULL.replace(r#"["open_incidents"]"#, r#"["open_incidents", "closed_incidents"]"#)).unwrap_err();
    assert!(e.message.contains("returns nothing"), "{e}");
}

#[test]
fn numeric_client_ids_are_accepted_and_missing_secrets_are_missing() {
    let c = parse(&FULL.replace(r#"client_id = "id""#, "client_id = 12345")).unwrap();
    assert_eq!(c.client_id, "12345");
    let e = parse(&FULL.replace(r#"client_secret = "secret""#, "")).unwrap_err();
    assert!(e.missing);
    assert!(!e.message.contains("secret\""));
}

#[test]
fn a_bad_first_fetch_names_the_key() {
    let e = parse(&FULL.replace("3 days", "soonish")).unwrap_err();
    assert_eq!(e.key, "connectors.ctr.first_fetch");
}

#[test]
fn enrichment_and_rate_limit_defaults_and_bounds() {
    let c = parse(FULL).unwrap();
    assert_eq!((c.enrich_concurrency, c.rate_limit_per_minute), (4, 10));
    let e = parse(&format!("{FULL}enrich_concurrency = 0\n")).unwrap_err();
    assert_eq!(e.key, "connectors.ctr.enrich_concurrency");
}
