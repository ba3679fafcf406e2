//! License tolerance and banding, in ONE place: connectors return plain results, this turns them
//! into the [`KriOutcome`] a run records.

use crate::connector::KriResult;
use crate::kri::{Band, Kri, KriOutcome, KriStatus, Thresholds};

/// Turn a connector's result for one KRI into what the run records.
///
/// - `Ok` → `ok`, banded against `thresholds`; a warning is logged and becomes the message.
/// - 403/404 on a KRI whose module may be unlicensed → value 0, `unlicensed`, a warning naming
///   the module, no band (a 0 from a module you don't have is not a clean posture).
/// - any other error → `failed`, value null; the last good value stays in the store.
pub fn settle(module_key: &str, kri: &dyn Kri, result: KriResult, thresholds: Thresholds) -> KriOutcome {
    let slug = kri.slug();
    let unit = kri.unit().as_str();
    match result {
        Ok(m) => {
            if let Some(w) = &m.warning {
                tracing::warn!(kri = slug, "{w}");
            }
            KriOutcome {
                slug,
                title: kri.title().to_owned(),
                owner: None,
                action: None,
                value: Some(m.value),
                unit,
                status: KriStatus::Ok,
                band: m.banded.then(|| Band::of(m.value, kri.direction(), thresholds)),
                message: m.warning,
                thresholds: Some(thresholds),
            }
        }
        Err(e) => match (e.status(), kri.licensed_module()) {
            (Some(status @ (403 | 404)), Some(licensed)) => {
                let message = format!(
                    "{licensed} module not available on this tenant (HTTP {status} on {}): recorded 0 as \
                     `unlicensed`, not a clean posture; if you don't license it, remove {slug} from \
                     [connectors.{module_key}] kris or disable the module",
                    endpoint_of(&e)
                );
                tracing::warn!(kri = slug, "{message}");
                KriOutcome {
                    slug,
                    title: kri.title().to_owned(),
                    owner: None,
                    action: None,
                    value: Some(0.0),
                    unit,
                    status: KriStatus::Unlicensed,
                    band: None,
                    message: Some(message),
                    thresholds: Some(thresholds),
                }
            }
            _ => {
                let message = e.to_string();
                tracing::error!(kri = slug, "{message}");
                KriOutcome {
                    slug,
                    title: kri.title().to_owned(),
                    owner: None,
                    action: None,
                    value: None,
                    unit,
                    status: KriStatus::Failed,
                    band: None,
                    message: Some(message),
                    thresholds: Some(thresholds),
                }
            }
        },
    }
}

fn endpoint_of(e: &crate::error::KriError) -> &str {
    match e {
        crate::error::KriError::Http(h) => h.endpoint(),
        _ => "its endpoint",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::Measurement;
    use crate::error::{HttpError, KriError};
    use crate::kri::{Direction, KriSpec, Unit};

    const LICENSED: KriSpec = KriSpec {
        slug: "pp_dmarc_enforcement_pct",
        title: "DMARC enforcement",
        meaning: "m",
        unit: Unit::Percent,
        direction: Direction::LowerIsWorse,
        amber: 80.0,
        red: 50.0,
        how: "h",
        licensed_module: Some("EFD"),
    };
    const CORE: KriSpec = KriSpec {
        licensed_module: None,
        slug: "pp_vap_count",
        ..LICENSED
    };

    fn forbidden() -> KriResult {
        Err(KriError::Http(HttpError::Forbidden {
            endpoint: "GET /v2/efd/dmarc/domains".into(),
            hint: crate::auth::DEFAULT_FORBIDDEN_HINT.into(),
            excerpt: String::new(),
        }))
    }

    #[test]
    fn forbidden_on_a_licensed_module_is_unlicensed_zero_naming_the_module() {
        let o = settle("efd", &LICENSED, forbidden(), LICENSED.default_thresholds());
        assert_eq!(o.status, KriStatus::Unlicensed);
        assert_eq!(o.value, Some(0.0));
        assert_eq!(o.band, None);
        let m = o.message.unwrap();
        assert!(
            m.contains("EFD") && m.contains("HTTP 403") && m.contains("/v2/efd/dmarc/domains"),
            "{m}"
        );
    }

    #[test]
    fn a_value_kept_by_convention_has_no_band() {
        let t = CORE.default_thresholds();
        let o = settle(
            "tap",
            &CORE,
            Ok(Measurement::not_measured(0.0, "nothing to average")),
            t,
        );
        assert_eq!((o.status, o.value, o.band), (KriStatus::Ok, Some(0.0), None));
        assert_eq!(o.message.as_deref(), Some("nothing to average"));
        let o = settle("tap", &CORE, Ok(Measurement::value(0.0)), t);
        assert!(o.band.is_some(), "a real 0 is banded");
    }

    #[test]
    fn not_found_on_a_licensed_module_is_unlicensed_too() {
        let r = Err(KriError::Http(HttpError::NotFound {
            endpoint: "GET /x".into(),
            excerpt: String::new(),
        }));
        assert_eq!(
            settle("efd", &LICENSED, r, LICENSED.default_thresholds()).status,
            KriStatus::Unlicensed
        );
    }

    #[test]
    fn forbidden_on_a_core_kri_fails_with_the_scope_message() {
        let o = settle("tap", &CORE, forbidden(), CORE.default_thresholds());
        assert_eq!(o.status, KriStatus::Failed);
        assert_eq!(o.value, None);
        assert!(o.message.unwrap().contains("missing API scope"));
    }

    #[test]
    fn other_errors_on_a_licensed_module_still_fail() {
        let r = Err(KriError::Http(HttpError::Throttled {
            endpoint: "GET /x".into(),
            detail: String::new(),
        }));
        assert_eq!(
            settle("efd", &LICENSED, r, LICENSED.default_thresholds()).status,
            KriStatus::Failed
        );
    }

    #[test]
    fn ok_values_are_banded_and_warnings_become_messages() {
        let o = settle(
            "efd",
            &LICENSED,
            Ok(Measurement::with_warning(0.0, "no domains")),
            LICENSED.default_thresholds(),
        );
        assert_eq!(o.status, KriStatus::Ok);
        assert_eq!(o.band, Some(Band::Red));
        assert_eq!(o.message.as_deref(), Some("no domains"));
    }
}

/// What `kri test` reports for one connector.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProbeOutcome {
    pub status: KriStatus,
    pub message: String,
}

/// License tolerance for probes: a 403/404 from a connector whose KRIs all live in a separately
/// licensed module means "not licensed", not "broken".
pub fn settle_probe(
    kris: &[&dyn Kri],
    result: Result<crate::connector::Probe, crate::error::KriError>,
) -> ProbeOutcome {
    match result {
        Ok(p) => ProbeOutcome {
            status: KriStatus::Ok,
            message: p.message,
        },
        Err(e) => {
            let licensed = kris
                .first()
                .and_then(|k| k.licensed_module())
                .filter(|_| kris.iter().all(|k| k.licensed_module().is_some()));
            match (e.status(), licensed) {
                (Some(status @ (403 | 404)), Some(module)) => ProbeOutcome {
                    status: KriStatus::Unlicensed,
                    message: format!(
                        "{module} module not available on this tenant (HTTP {status} on {}): its KRIs will record 0 as `unlicensed`",
                        endpoint_of(&e)
                    ),
                },
                _ => ProbeOutcome {
                    status: KriStatus::Failed,
                    message: e.to_string(),
                },
            }
        }
    }
}
