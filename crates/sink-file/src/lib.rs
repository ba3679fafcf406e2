//! The `file` sink: each event as one JSON line (NDJSON) appended to a file, the batch synced
//! to disk before it counts as delivered. For a SIEM agent that tails files, and for audits.

use std::io::Write;
use std::path::PathBuf;

use kri_core::config::ConfigError;
use kri_core::sink::{Sink, SinkError, SinkRegistration, SinkSettings};
use serde::Deserialize;
use serde_json::Value;

kri_core::inventory::submit! {
    SinkRegistration {
        kind: "file",
        description: "events appended to a file as NDJSON, synced per batch",
        build,
        default_events: None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// The file (created 0600 when missing); relative to the config file.
    path: Option<PathBuf>,
}

struct FileSink {
    path: PathBuf,
}

fn build(settings: &SinkSettings) -> Result<Box<dyn Sink>, ConfigError> {
    let cfg: FileConfig = settings.parse()?;
    let path = cfg.path.filter(|p| !p.as_os_str().is_empty()).ok_or_else(|| {
        ConfigError::invalid(
            settings.key("path"),
            "missing: the file to append the events to, e.g. \"events.ndjson\"",
        )
    })?;
    Ok(Box::new(FileSink { path }))
}

#[async_trait::async_trait]
impl Sink for FileSink {
    async fn deliver(&self, events: &[Value]) -> Result<(), SinkError> {
        let mut text = String::new();
        for e in events {
            text.push_str(&kri_core::secret::scrub(&e.to_string()));
            text.push('\n');
        }
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path)?;
            file.write_all(text.as_bytes())?;
            file.sync_data()
        })
        .await
        .map_err(|e| SinkError::retry(format!("the writer task failed: {e}")))?
        .map_err(|e| SinkError::retry(format!("cannot append to `{}`: {e}", self.path.display())))
    }
}
