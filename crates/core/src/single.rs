//! The most common connector: one KRI from one GET (a percentage from a summary, a count from a
//! list). The plumbing — probe, collect, plan, metering — is written once here; the connector
//! says where to ask, how to read the answer, and what the probe should say.

use serde::de::DeserializeOwned;

use crate::budget::Pool;
use crate::connector::{Connector, KriResult, PlannedCalls, Probe, RunContext};
use crate::error::KriError;
use crate::http::HttpClient;
use crate::kri::{Kri, KriSpec};

/// What a one-GET connector declares.
pub trait OneGet: Send + Sync + 'static {
    /// The JSON answer. A 204 decodes as `null`: make it an `Option` when 204 means "nothing".
    type Answer: DeserializeOwned + Send;

    /// The KRI it measures.
    fn kri(&self) -> &'static KriSpec;
    /// The pool its call counts in.
    fn pool(&self) -> Pool;
    /// The client to call with (not metered; metering is done here).
    fn http(&self) -> &HttpClient;
    /// The path and query of the GET.
    fn request(&self) -> (&'static str, &'static [(&'static str, &'static str)]);
    /// The value, or why there is none (an answer without its figures fails, never reads as 0).
    fn measure(&self, answer: Self::Answer) -> KriResult;
    /// What `kri test` says it saw.
    fn probe_message(&self, answer: &Self::Answer) -> Result<String, KriError>;
}

/// A [`Connector`] made of a [`OneGet`].
pub struct OneGetConnector<T>(pub T);

impl<T: OneGet> OneGetConnector<T> {
    async fn fetch(&self, ctx: &RunContext) -> Result<T::Answer, KriError> {
        let (path, query) = self.0.request();
        let http = self.0.http().metered(&ctx.budget, self.0.pool());
        Ok(http.get_json(path, query).await?)
    }

    fn call(&self) -> String {
        let (path, query) = self.0.request();
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if query.is_empty() {
            format!("GET {path}")
        } else {
            format!("GET {path}?{}", query.join("&"))
        }
    }
}

#[async_trait::async_trait]
impl<T: OneGet> Connector for OneGetConnector<T> {
    async fn probe(&self, ctx: &RunContext) -> Result<Probe, KriError> {
        let answer = self.fetch(ctx).await?;
        Ok(Probe {
            message: format!("answered {}: {}", self.call(), self.0.probe_message(&answer)?),
        })
    }

    async fn collect(&self, ctx: &RunContext, selected: &[&'static str]) -> Vec<(&'static str, KriResult)> {
        let slug = self.0.kri().slug();
        if !selected.contains(&slug) {
            return Vec::new();
        }
        let result = match self.fetch(ctx).await {
            Ok(answer) => self.0.measure(answer),
            Err(e) => Err(e),
        };
        vec![(slug, result)]
    }

    async fn plan(&self, _ctx: &RunContext, selected: &[&'static str]) -> Result<Vec<PlannedCalls>, KriError> {
        if !selected.contains(&self.0.kri().slug()) {
            return Ok(Vec::new());
        }
        let pool = self.0.pool();
        Ok(vec![PlannedCalls {
            pool: pool.name,
            limit: pool.limit,
            calls: 1,
            detail: vec![self.call()],
        }])
    }
}
