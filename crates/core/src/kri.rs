//! What a KRI is (the [`Kri`] trait), how its value is banded, and what a run records for it.

use serde::{Serialize, Serializer};

/// Which way is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    HigherIsWorse,
    LowerIsWorse,
}

/// The unit a value is expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Count,
    Percent,
    Hours,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "count",
            Unit::Percent => "percent",
            Unit::Hours => "hours",
        }
    }
}

/// Amber and red thresholds. For higher-is-worse KRIs a value at or above `amber` is amber and
/// at or above `red` is red; for lower-is-worse KRIs, at or below.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub amber: f64,
    pub red: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Green,
    Amber,
    Red,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Green => "green",
            Band::Amber => "amber",
            Band::Red => "red",
        }
    }

    /// Band a value against thresholds in the given direction.
    pub fn of(value: f64, direction: Direction, t: Thresholds) -> Band {
        match direction {
            Direction::HigherIsWorse if value >= t.red => Band::Red,
            Direction::HigherIsWorse if value >= t.amber => Band::Amber,
            Direction::LowerIsWorse if value <= t.red => Band::Red,
            Direction::LowerIsWorse if value <= t.amber => Band::Amber,
            _ => Band::Green,
        }
    }
}

impl Thresholds {
    /// Thresholds must agree with the direction: for higher-is-worse, amber ≤ red.
    pub fn check(self, direction: Direction) -> Result<(), String> {
        if !self.amber.is_finite() || !self.red.is_finite() {
            return Err("amber and red must be finite numbers".into());
        }
        match direction {
            Direction::HigherIsWorse if self.amber > self.red => Err(format!(
                "higher values are worse for this KRI, so amber ({}) must be at most red ({})",
                self.amber, self.red
            )),
            Direction::LowerIsWorse if self.amber < self.red => Err(format!(
                "lower values are worse for this KRI, so amber ({}) must be at least red ({})",
                self.amber, self.red
            )),
            _ => Ok(()),
        }
    }
}

/// A Key Risk Indicator a connector offers.
pub trait Kri: Send + Sync + std::fmt::Debug {
    /// Stable identifier, e.g. `acme_open_alerts`.
    fn slug(&self) -> &'static str;
    /// Its name for people, in title position (a tile, a chart, a mail): `Very Attacked
    /// People`. `[kris.SLUG] title` overrides it.
    fn title(&self) -> &'static str;
    /// One line for people.
    fn meaning(&self) -> &'static str;
    fn unit(&self) -> Unit;
    fn direction(&self) -> Direction;
    /// The seeded defaults; `[thresholds.SLUG]` overrides them.
    fn default_thresholds(&self) -> Thresholds;
    /// How it is measured against the real API.
    fn how(&self) -> &'static str;
    /// `Some(module name)` when the KRI needs a separately licensed module: a 403/404 from its
    /// endpoint then means "not licensed" (value 0, status `unlicensed`) rather than a failure.
    fn licensed_module(&self) -> Option<&'static str> {
        None
    }
}

/// How a KRI is practised (`[kris.SLUG]`, per tenant like every table): its title for people,
/// who owns it, what to do on a breach, how fast, and the appetite its thresholds come from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Practice {
    /// Replaces the registration's title.
    pub title: Option<String>,
    pub owner: Option<String>,
    /// What to do on amber or red (text; a URL is shown as a link).
    pub action: Option<String>,
    /// How long a KRI may stay in a band before it is overdue, unless acknowledged.
    pub respond_within: RespondWithin,
    /// The risk appetite statement the thresholds trace to.
    pub appetite: Option<String>,
}

/// `respond_within = { amber = "7d", red = "24h" }`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RespondWithin {
    pub amber: Option<std::time::Duration>,
    pub red: Option<std::time::Duration>,
}

impl RespondWithin {
    /// The time allowed in `band` (none for green, or when not set).
    pub fn for_band(&self, band: Band) -> Option<std::time::Duration> {
        match band {
            Band::Amber => self.amber,
            Band::Red => self.red,
            Band::Green => None,
        }
    }
}

/// The plain description of a KRI; connectors declare theirs as `const`s.
#[derive(Debug, Clone, Copy)]
pub struct KriSpec {
    pub slug: &'static str,
    pub title: &'static str,
    pub meaning: &'static str,
    pub unit: Unit,
    pub direction: Direction,
    pub amber: f64,
    pub red: f64,
    pub how: &'static str,
    pub licensed_module: Option<&'static str>,
}

impl Kri for KriSpec {
    fn slug(&self) -> &'static str {
        self.slug
    }
    fn title(&self) -> &'static str {
        self.title
    }
    fn meaning(&self) -> &'static str {
        self.meaning
    }
    fn unit(&self) -> Unit {
        self.unit
    }
    fn direction(&self) -> Direction {
        self.direction
    }
    fn default_thresholds(&self) -> Thresholds {
        Thresholds {
            amber: self.amber,
            red: self.red,
        }
    }
    fn how(&self) -> &'static str {
        self.how
    }
    fn licensed_module(&self) -> Option<&'static str> {
        self.licensed_module
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KriStatus {
    Ok,
    Unlicensed,
    Failed,
}

impl KriStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KriStatus::Ok => "ok",
            KriStatus::Unlicensed => "unlicensed",
            KriStatus::Failed => "failed",
        }
    }
}

/// What one run says about one KRI: the shape of `kris[]` in `kri run --output json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KriOutcome {
    pub slug: &'static str,
    /// Its title for people (`[kris.SLUG] title`, else its registration's).
    pub title: String,
    /// Who owns it (`[kris.SLUG] owner`), when configured.
    pub owner: Option<String>,
    /// What to do on a breach (`[kris.SLUG] action`): carried to events, not in the run JSON.
    #[serde(skip)]
    pub action: Option<String>,
    #[serde(serialize_with = "serialize_value")]
    pub value: Option<f64>,
    pub unit: &'static str,
    pub status: KriStatus,
    pub band: Option<Band>,
    pub message: Option<String>,
    /// The thresholds `band` was computed with, stored with the value (not in the JSON).
    #[serde(skip)]
    pub thresholds: Option<Thresholds>,
}

/// Whole numbers print as JSON integers (`12`, not `12.0`); others as they are.
pub fn serialize_value<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => s.serialize_i64(*v as i64),
        Some(v) => s.serialize_f64(*v),
        None => s.serialize_none(),
    }
}

/// Round a percentage to two decimals so stored values and snapshots are stable.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    ((part as f64) * 10000.0 / (whole as f64)).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds { amber: 10.0, red: 25.0 };

    #[test]
    fn higher_is_worse_bands_at_the_edges() {
        assert_eq!(Band::of(9.99, Direction::HigherIsWorse, T), Band::Green);
        assert_eq!(Band::of(10.0, Direction::HigherIsWorse, T), Band::Amber);
        assert_eq!(Band::of(24.9, Direction::HigherIsWorse, T), Band::Amber);
        assert_eq!(Band::of(25.0, Direction::HigherIsWorse, T), Band::Red);
    }

    #[test]
    fn lower_is_worse_bands_at_the_edges() {
        let t = Thresholds { amber: 80.0, red: 50.0 };
        assert_eq!(Band::of(100.0, Direction::LowerIsWorse, t), Band::Green);
        assert_eq!(Band::of(80.0, Direction::LowerIsWorse, t), Band::Amber);
        assert_eq!(Band::of(50.0, Direction::LowerIsWorse, t), Band::Red);
        assert_eq!(Band::of(0.0, Direction::LowerIsWorse, t), Band::Red);
    }

    #[test]
    fn thresholds_must_follow_the_direction() {
        assert!(T.check(Direction::HigherIsWorse).is_ok());
        assert!(T.check(Direction::LowerIsWorse).is_err());
        let nan = Thresholds {
            amber: f64::NAN,
            red: 1.0,
        };
        assert!(nan.check(Direction::HigherIsWorse).is_err());
    }

    #[test]
    fn percent_rounds_to_two_decimals_and_zero_whole_is_zero() {
        assert_eq!(percent(2, 3), 66.67);
        assert_eq!(percent(1, 4), 25.0);
        assert_eq!(percent(0, 0), 0.0);
    }

    #[test]
    fn whole_values_serialize_as_integers() {
        let o = KriOutcome {
            slug: "x",
            title: "X".into(),
            owner: None,
            action: None,
            value: Some(12.0),
            unit: "count",
            status: KriStatus::Ok,
            band: Some(Band::Green),
            message: None,
            thresholds: Some(Thresholds { amber: 10.0, red: 25.0 }),
        };
        let j = serde_json::to_string(&o).unwrap();
        assert!(!j.contains("amber"), "the thresholds are not in the run's JSON: {j}");
        assert!(j.contains(r#""value":12,"#), "{j}");
        let o = KriOutcome {
            value: Some(66.67),
            ..o
        };
        assert!(serde_json::to_string(&o).unwrap().contains(r#""value":66.67"#));
    }
}
