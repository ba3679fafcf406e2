//! The ONE place that links connector crates into the binary. A Cargo dependency alone does not
//! run a crate's `inventory::submit!` (rustc drops crates no code mentions), so each connector
//! gets a `use … as _;` line here. Adding a vendor = adding its crate and one line.

use kri_connector_clear as _;
use kri_connector_ctr as _;
use kri_connector_efd as _;
use kri_connector_tap as _;
// The sinks, the same way: one line each.
use kri_sink_alertmanager as _;
use kri_sink_email as _;
use kri_sink_file as _;
use kri_sink_splunk_hec as _;
use kri_sink_syslog as _;
use kri_sink_webhook as _;

#[cfg(test)]
mod tests {
    use kri_core::registry::registrations;

    #[test]
    fn every_connector_crate_is_registered() {
        let modules: Vec<(&str, &str)> = registrations().iter().map(|r| (r.module, r.id)).collect();
        assert_eq!(
            modules,
            vec![
                ("clear", "proofpoint-clear"),
                ("ctr", "proofpoint-ctr"),
                ("efd", "proofpoint-efd"),
                ("tap", "proofpoint-tap")
            ]
        );
    }

    #[test]
    fn every_sink_crate_is_registered() {
        let kinds: Vec<&str> = kri_core::sink::sink_types().iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            vec!["alertmanager", "email", "file", "splunk_hec", "syslog", "webhook"]
        );
    }

    #[test]
    fn kri_slugs_are_unique_across_connectors() {
        let mut slugs: Vec<&str> = registrations()
            .iter()
            .flat_map(|r| r.kris.iter().map(|k| k.slug()))
            .collect();
        let n = slugs.len();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), n);
    }

    #[test]
    fn default_thresholds_agree_with_directions() {
        for r in registrations() {
            for k in r.kris {
                k.default_thresholds()
                    .check(k.direction())
                    .unwrap_or_else(|e| panic!("{}: {e}", k.slug()));
            }
        }
    }
}
