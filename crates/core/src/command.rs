//! Subcommands a connector adds to `kri` (`kri acme alerts list`, say). The connector declares
//! a clap command and a handler; the runner parses, gives the handler what a run gets (its
//! settings, the store, the clock, its deadline), and renders what comes back as a table for
//! people or JSON for machines, so every subcommand follows the same output contract.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::clock::Clock;
use crate::config::{ConfigError, ConnectorSettings};
use crate::store::Store;

/// A connector's subcommand: `kri NAME …`.
#[derive(Clone, Copy)]
pub struct CommandSpec {
    /// Its clap definition; the command's name is the word after `kri`.
    pub cli: fn() -> clap::Command,
    /// Run it with the parsed arguments.
    pub run: for<'a> fn(Invocation<'a>) -> BoxFuture<'a, Result<Output, CommandError>>,
}

/// Everything a subcommand's handler gets.
pub struct Invocation<'a> {
    /// The arguments after `kri NAME`.
    pub matches: &'a clap::ArgMatches,
    /// The connector's settings, whether or not it is enabled.
    pub settings: &'a ConnectorSettings,
    /// Whether the config has a `[connectors.KEY]` table at all (to explain a missing one).
    pub configured: bool,
    /// The tenant it works on (`default` without tenants): its state is this tenant's.
    pub tenant: &'a str,
    pub store: &'a Store,
    pub clock: Arc<dyn Clock>,
    /// The connector's `run_timeout`: the handler's work should end within it.
    pub run_timeout: Duration,
    /// A person is watching stderr on a terminal: progress bars are welcome.
    pub interactive: bool,
    /// Say something to people on stderr (warnings, how long a wait will take). Scrubbed.
    pub notice: &'a (dyn Fn(&str) + Send + Sync),
}

/// What a subcommand produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// The machine form, printed with `--output json`.
    pub json: serde_json::Value,
    /// The people form: tables and lines, in order, printed with `--output table`.
    pub human: Vec<Block>,
    /// 0: all good; 1: something failed (said in the output).
    pub exit_code: u8,
}

/// One piece of the people form.
#[derive(Debug, Clone)]
pub enum Block {
    Line(String),
    Table(Table),
}

/// A table for people: a header and rows of cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// The headers of free-text columns (titles, names): they wrap, and are the first to go
    /// when a terminal is too narrow, in this order (the first listed gives way first; list the
    /// most telling one last). Other columns (ids, times) are always shown whole.
    pub free_text: Vec<String>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            free_text: Vec::new(),
        }
    }

    /// Mark these headers as free text, the first to give way first (see [`Table::free_text`]).
    pub fn with_free_text(mut self, headers: &[&str]) -> Self {
        self.free_text = headers.iter().map(|h| (*h).to_owned()).collect();
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

/// A subcommand that could not do its work.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    /// A usage error, found before any call (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A config error, found before any call (exit 2); the runner says where the key was set.
    #[error("config error: {0}")]
    Config(#[from] ConfigError),
    /// The work failed (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }
}
