//! The service: `kri serve` (the agent's scheduler and an HTTP server in one process: routes,
//! pages, Prometheus metrics, the JSON API and the token checks) and `kri daemon` (the same
//! scheduler without HTTP), and `kri report --html`. It depends on the agent and the dashboard,
//! never the other way round.

mod http;
mod listen;
mod metrics;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kri_core::{CancellationToken, Clock, Store};

use kri_agent::{Events, Failure, Lines, scheduler};
use kri_config::Loaded;

/// One delivery pass to the sinks at most.
const DELIVERY_PASS: Duration = Duration::from_secs(5);

/// How `kri serve` / `kri daemon` was started.
pub struct ServeHow {
    /// Events as one JSON object per line (`--output json`), else lines for people.
    pub json: bool,
    /// Where the events and the service's own lines are written.
    pub lines: Arc<dyn Lines>,
    /// `--listen`, overriding `[serve] listen`; ignored without HTTP.
    pub listen: Option<String>,
    /// `false`: `kri daemon`, the scheduler alone.
    pub http: bool,
    /// How often the scheduler looks at the clock while it waits.
    pub tick: Duration,
    /// The build's commit, for `kri_build_info`.
    pub commit: &'static str,
}

/// Run until SIGTERM/SIGINT: exit 0 after a clean stop, whatever the runs did.
pub async fn serve(loaded: Loaded, store: Store, clock: Arc<dyn Clock>, how: ServeHow) -> Result<u8, Failure> {
    if !loaded
        .tenants
        .iter()
        .flat_map(|t| &t.modules)
        .any(|m| m.connector.is_some())
    {
        let modules: Vec<&str> = kri_core::registry::registrations().iter().map(|r| r.module).collect();
        return Err(Failure::config(format!(
            "no connector is enabled, so there is nothing to schedule: set enabled = true in the [connectors.KEY] table of one of: {}",
            modules.join(", ")
        )));
    }
    let listener = if how.http {
        let addr = match &how.listen {
            Some(text) => kri_config::parse_listen(text).map_err(|m| Failure::config(format!("--listen: {m}")))?,
            None => loaded.serve.listen,
        };
        check_exposure(addr, &loaded)?;
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Failure::runtime(format!(
                "cannot listen on {addr}: {e}; choose another address with --listen or [serve] listen"
            ))
        })?;
        Some(listener)
    } else {
        None
    };
    let bound = listener.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(pool) = store.pool_max_size()
        && pool <= loaded.serve.runs_at_once
    {
        // Seen: with 8 connections for 32 runs, every statement stalled for the pool's wait.
        tracing::warn!(
            "[serve] runs_at_once is {} but the store's pool holds {pool} connections: runs will wait on each \
             other; add ?pool_max_size={} to [store] url, or lower runs_at_once",
            loaded.serve.runs_at_once,
            loaded.serve.runs_at_once + 8
        );
    }

    let events = Events::new(how.json, clock.clone(), how.lines.clone());
    let loaded = Arc::new(loaded);
    let scheduler = scheduler::Scheduler::new(loaded.clone(), store.clone(), clock.clone(), events.clone(), how.tick);
    // Installed once, before anything runs: a signal at any moment is seen.
    listen_for_signals(scheduler.stop.clone(), how.lines.clone())?;
    let what = if how.http { "kri serve" } else { "kri daemon" };
    events.started(
        what,
        bound.map(|a| a.to_string()).as_deref(),
        &loaded.store_description(),
        &scheduler.plan(),
    );

    let server_stop = CancellationToken::new();
    let server = listener.map(|listener| {
        let app = Arc::new(http::App {
            listen: bound.unwrap_or(loaded.serve.listen),
            token: loaded.serve.token.clone(),
            loaded: loaded.clone(),
            store: store.clone(),
            clock: clock.clone(),
            scheduler: scheduler.clone(),
            commit: how.commit,
        });
        let stop = server_stop.clone();
        listen::raise_file_limit();
        tokio::spawn(listen::serve(listener, http::router(app), stop))
    });

    // Events reach the sinks continuously: a pass every second, while the service runs.
    let delivery = {
        let (loaded, store, clock, stop) = (loaded.clone(), store.clone(), clock.clone(), scheduler.stop.clone());
        tokio::spawn(async move {
            while !loaded.sinks.is_empty() {
                let passes = kri_agent::deliver(&loaded.sinks, &store, clock.clone(), DELIVERY_PASS).await;
                // A backlog goes on at once; otherwise look again in a second.
                if passes.iter().any(|d| d.more) && !stop.is_cancelled() {
                    continue;
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        })
    };
    scheduler.clone().run(loaded.serve.grace).await;
    // The runs are settled: what they produced gets one last, bounded pass.
    delivery.abort();
    kri_agent::deliver(&loaded.sinks, &store, clock.clone(), DELIVERY_PASS).await;
    // The pages and the health answers stay up until the runs are settled.
    server_stop.cancel();
    if let Some(server) = server
        && tokio::time::timeout(Duration::from_secs(5), server).await.is_err()
    {
        tracing::warn!("open HTTP connections did not close within 5s; leaving them");
    }
    events.stopped();
    Ok(0)
}

/// Refuse to publish the actions to the network without a token, and the pages at all unless
/// the user said they are public (`[serve] public_read_only = true`).
fn check_exposure(addr: SocketAddr, loaded: &Loaded) -> Result<(), Failure> {
    if addr.ip().is_loopback() || loaded.serve.token.is_some() || loaded.serve.public_read_only {
        return Ok(());
    }
    Err(Failure::config(format!(
        "refusing to listen on {addr} without a token: anyone who can reach it would see every KRI and run history. \
         Set [serve] token (or KRI_SERVE__TOKEN) to at least 16 random characters, or set [serve] public_read_only = true \
         to serve the read-only pages and API with Run now and Test disabled, or listen on 127.0.0.1"
    )))
}

/// The first SIGTERM/SIGINT stops scheduling (`stop`); a second one exits at once.
fn listen_for_signals(stop: CancellationToken, lines: Arc<dyn Lines>) -> Result<(), Failure> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind| signal(kind).map_err(|e| Failure::runtime(format!("cannot listen for signals: {e}")));
        let mut term = listen(SignalKind::terminate())?;
        let mut int = listen(SignalKind::interrupt())?;
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                let signo = tokio::select! {
                    _ = term.recv() => 15,
                    _ = int.recv() => 2,
                };
                seen += 1;
                if seen == 1 {
                    stop.cancel();
                } else {
                    lines.err("second signal: exiting now, without waiting for the running runs");
                    std::process::exit(128 + signo);
                }
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let mut seen = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            seen += 1;
            if seen == 1 {
                stop.cancel();
            } else {
                std::process::exit(130);
            }
        }
    });
    Ok(())
}

/// Until SIGTERM or Ctrl-C (for `kri sandbox`).
pub async fn until_signal(lines: Arc<dyn Lines>) {
    let stop = CancellationToken::new();
    if listen_for_signals(stop.clone(), lines).is_err() {
        let _ = tokio::signal::ctrl_c().await;
        return;
    }
    stop.cancelled().await;
}

/// `kri report --html FILE`: the dashboard as one self-contained file (no script, no links out).
/// With several tenants (and no --tenant), the all-tenants overview.
pub async fn report_html(
    loaded: &Loaded,
    store: &Store,
    clock: Arc<dyn Clock>,
    period: (std::time::Duration, &str),
) -> Result<String, Failure> {
    let failed = |e: kri_core::store::StoreError| Failure::runtime(e.to_string());
    if loaded.tenants.len() > 1 {
        let o = pages::overview(loaded, store, clock.as_ref(), kri_dashboard::Actions::Static)
            .await
            .map_err(failed)?;
        return Ok(kri_core::secret::scrub(&kri_dashboard::overview_page(&o)));
    }
    let tenant = pages::pick_tenant(loaded, None).map_err(Failure::config)?;
    let r = pages::report(loaded, tenant, store, clock.as_ref(), period)
        .await
        .map_err(failed)?;
    Ok(kri_core::secret::scrub(&kri_dashboard::report_page(&r)))
}
