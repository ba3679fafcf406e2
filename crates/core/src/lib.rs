//! `kri-core`: everything two connectors would both need, written once.
//!
//! Data flows one way: config → [`registry`] → [`Connector`] → [`http`] → KRI math →
//! [`settle`](license::settle) → [`store`] → output. A connector crate holds only its endpoints,
//! its parsing and its KRI math.

pub mod auth;
pub mod budget;
pub mod calibrate;
pub mod clock;
pub mod command;
pub mod config;
pub mod connector;
pub mod error;
pub mod events;
pub mod http;
pub mod ids;
pub mod kri;
pub mod lease;
pub mod license;
pub mod oauth;
pub mod registry;
pub mod report;
pub mod run;
pub mod secret;
pub mod single;
pub mod sink;
pub mod store;
pub mod testing;
pub mod text;
pub mod tls;
pub mod window;

pub use async_trait::async_trait;
/// figment's config values, re-exported so a family crate reads its table with the same version.
pub use figment;
/// Connector crates submit their [`registry::Registration`] through this re-export, so the whole
/// workspace uses one version of `inventory`.
pub use inventory;
pub use tokio_util::sync::CancellationToken;

pub use auth::{Auth, BasicAuth, BasicCredentials, NoAuth};
pub use budget::{Budget, CallCounter, Pool};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ConfigError, ConnectorSettings};
pub use connector::{Connector, Feed, FeedItem, KriResult, Measurement, PlannedCalls, Probe, RunContext};
pub use error::{HttpError, KriError};
pub use http::{Answer, CaFile, HttpClient, HttpOptions, Method, Network, Proxy, Request};
pub use kri::{Band, Direction, Kri, KriOutcome, KriSpec, KriStatus, Practice, RespondWithin, Thresholds, Unit};
pub use lease::{Lease, LeaseError};
pub use registry::{Family, Registration};
pub use secret::Secret;
pub use store::{StateValue, Store};
