//! Cursors and cached facts of one connector, with the version of their shape.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::sql::vals;
use super::{Store, StoreFailure, fmt_time};
use crate::error::KriError;
use crate::secret::scrub_cow;

impl Store {
    /// A connector's slice of the state table.
    pub fn state(&self, namespace: &str) -> StateHandle {
        StateHandle {
            store: self.clone(),
            namespace: namespace.to_owned(),
        }
    }
}

/// A value a connector keeps in its state. `VERSION` is the version of its stored shape: bump it
/// when the shape changes, and rows of any other version are dropped (and read again from the
/// API) instead of failing the run.
pub trait StateValue: Serialize + DeserializeOwned + Send + 'static {
    const VERSION: u32;
}

/// Cursors and cached facts of one connector: JSON values under string keys. A row that cannot
/// be read (damaged, or written in another shape) is logged with its key and dropped: it is read
/// again from the API, and it never fails a KRI it does not feed.
#[derive(Clone, Debug)]
pub struct StateHandle {
    store: Store,
    namespace: String,
}

impl StateHandle {
    pub async fn get<T: StateValue>(&self, key: &str) -> Result<Option<T>, KriError> {
        let row = self
            .store
            .query_opt(
                "reading connector state",
                "SELECT value, version FROM state WHERE namespace = ?1 AND key = ?2",
                vals![&self.namespace, key],
                |r| Ok((r.text(0)?, r.u32(1)?)),
            )
            .await?;
        let Some((text, version)) = row else { return Ok(None) };
        match decode::<T>(&text, version) {
            Ok(v) => Ok(Some(v)),
            Err(why) => {
                self.drop_unreadable(key, &why).await?;
                Ok(None)
            }
        }
    }

    /// Write several keys in one transaction.
    pub async fn put_many<T: StateValue>(&self, now: DateTime<Utc>, entries: &[(String, T)]) -> Result<(), KriError> {
        let rows = entries
            .iter()
            .map(|(k, v)| encode(&self.store, v).map(|j| (k.clone(), j)))
            .collect::<Result<_, _>>()?;
        self.write(now, rows, T::VERSION).await
    }

    /// The feed interface: write a feed's items (as [`put_many`](Self::put_many)) and, in the
    /// same transaction, an `incident.created` or `incident.updated` event for each item the
    /// connector says is new or changed, so an item is stored exactly when its event is.
    pub async fn put_feed<T: StateValue>(
        &self,
        now: DateTime<Utc>,
        tenant: &str,
        entries: &[(String, T)],
        changes: Vec<crate::events::FeedChange>,
    ) -> Result<(), KriError> {
        use crate::events::{Event, EventType};
        let rows = entries
            .iter()
            .map(|(k, v)| encode(&self.store, v).map(|j| (k.clone(), j)))
            .collect::<Result<_, _>>()?;
        let time = fmt_time(&now);
        let events: Vec<Event> = changes
            .into_iter()
            .map(|c| Event {
                id: uuid::Uuid::new_v4().to_string(),
                kind: if c.created {
                    EventType::IncidentCreated
                } else {
                    EventType::IncidentUpdated
                },
                time: time.clone(),
                tenant: tenant.to_owned(),
                subject: format!("{}/{}", c.module, c.id),
                kri: None,
                connector: None,
                incident: Some(c),
                run_id: String::new(),
            })
            .collect();
        let mut statements = self.statements(now, rows, T::VERSION);
        statements.extend(self.store.outbox_statements(&events));
        self.store.transaction("writing connector state", statements).await?;
        Ok(())
    }

    pub async fn put<T: StateValue>(&self, now: DateTime<Utc>, key: &str, value: &T) -> Result<(), KriError> {
        self.write(now, vec![(key.to_owned(), encode(&self.store, value)?)], T::VERSION)
            .await
    }

    async fn write(&self, now: DateTime<Utc>, rows: Vec<(String, String)>, version: u32) -> Result<(), KriError> {
        let statements = self.statements(now, rows, version);
        self.store.transaction("writing connector state", statements).await?;
        Ok(())
    }

    fn statements(&self, now: DateTime<Utc>, rows: Vec<(String, String)>, version: u32) -> Vec<super::sql::Statement> {
        let at = fmt_time(&now);
        rows.into_iter()
            .map(|(k, v)| {
                (
                    "INSERT INTO state (namespace, key, value, updated_at, version) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,
                         updated_at = excluded.updated_at, version = excluded.version",
                    vals![&self.namespace, k, v, &at, version],
                )
            })
            .collect()
    }

    /// Every readable key under `prefix`, in key order (unreadable rows are dropped).
    pub async fn scan<T: StateValue>(&self, prefix: &str) -> Result<Vec<(String, T)>, KriError> {
        let rows = self
            .store
            .query_map(
                "scanning connector state",
                // SQLite's LIKE ignores the case of ASCII letters, PostgreSQL's does not: lower
                // both sides so the engines agree.
                "SELECT key, value, version FROM state WHERE namespace = ?1 AND lower(key) LIKE ?2 ESCAPE '\\'
                 ORDER BY key",
                vals![&self.namespace, like_prefix(prefix)],
                |r| Ok((r.text(0)?, r.text(1)?, r.u32(2)?)),
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, text, version) in rows {
            match decode::<T>(&text, version) {
                Ok(v) => out.push((k, v)),
                Err(why) => self.drop_unreadable(&k, &why).await?,
            }
        }
        Ok(out)
    }

    /// Delete one key.
    pub async fn delete(&self, key: &str) -> Result<(), KriError> {
        self.store
            .execute(
                "deleting connector state",
                "DELETE FROM state WHERE namespace = ?1 AND key = ?2",
                vals![&self.namespace, key],
            )
            .await?;
        Ok(())
    }

    /// Log and delete a row that cannot be read, so it is read again from the API.
    pub async fn drop_unreadable(&self, key: &str, why: &str) -> Result<(), KriError> {
        tracing::warn!(
            namespace = %self.namespace,
            key,
            "stored state `{key}` could not be read ({why}); dropped, it will be read again from the API"
        );
        self.delete(key).await
    }

    /// Delete every key under `prefix` (e.g. facts that aged out).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, KriError> {
        Ok(self
            .store
            .execute(
                "pruning connector state",
                "DELETE FROM state WHERE namespace = ?1 AND lower(key) LIKE ?2 ESCAPE '\\'",
                vals![&self.namespace, like_prefix(prefix)],
            )
            .await?)
    }
}

/// A LIKE pattern for keys starting with `prefix` (any case of ASCII letters, as SQLite's LIKE
/// always did), matched against `lower(key)`.
fn like_prefix(prefix: &str) -> String {
    format!(
        "{}%",
        prefix
            .to_ascii_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// JSON of a state value, with secrets scrubbed.
fn encode<T: StateValue>(store: &Store, value: &T) -> Result<String, KriError> {
    serde_json::to_string(value)
        .map(|j| scrub_cow(&j).into_owned())
        .map_err(|e| store.error("encoding state", StoreFailure::from(e)).into())
}

fn decode<T: StateValue>(text: &str, version: u32) -> Result<T, String> {
    if version != T::VERSION {
        return Err(format!(
            "written in shape version {version}, this kri reads version {}",
            T::VERSION
        ));
    }
    serde_json::from_str(text).map_err(|e| format!("damaged: {e}"))
}
