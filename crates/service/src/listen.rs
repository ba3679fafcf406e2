//! The HTTP server's accept loop: each connection served by hyper with a deadline for its
//! request headers, and a cap on connections open at once. Without them, 1,100 half-sent
//! requests took every file descriptor and `GET /` went unanswered for everyone else
//! (slowloris), a half request staying open for as long as its client liked.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use kri_core::CancellationToken;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long a client may take to send a request's headers, on a new connection or between two
/// requests of a kept-alive one.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once, at most (fewer when the process may open fewer files).
pub const MAX_CONNECTIONS: usize = 4096;

/// Serve `router` on `listener` until `stop`; connections already open finish on their own.
pub async fn serve(listener: TcpListener, router: axum::Router, stop: CancellationToken) {
    let open = Arc::new(Semaphore::new(connection_cap()));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let builder = Arc::new(builder);
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, or a connection gone before it was taken: wait a moment
                // instead of spinning.
                tracing::debug!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        // At the cap, a new connection is closed at once: the open ones are served, and a slow
        // client's place frees within the header deadline.
        let Ok(permit) = open.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        tokio::spawn(async move {
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::trace!("connection: {e}");
            }
            drop(permit);
        });
    }
}

/// [`MAX_CONNECTIONS`], or fewer when the file limit is lower: room is kept for the store,
/// the API calls and the logs.
fn connection_cap() -> usize {
    #[cfg(unix)]
    if let Some(limit) = file_limit() {
        let files = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
        return MAX_CONNECTIONS.min(files.saturating_sub(128).max(16));
    }
    MAX_CONNECTIONS
}

/// The process's limit of open files (soft and hard).
#[cfg(unix)]
fn file_limit() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit)
}

/// Raise the soft limit of open files to the hard one (as a Go program does at start): the
/// usual soft 1,024 is too few for a service, the hard limit is what the system allows.
pub fn raise_file_limit() {
    #[cfg(unix)]
    if let Some(mut limit) = file_limit()
        && limit.rlim_cur < limit.rlim_max
    {
        limit.rlim_cur = limit.rlim_max.min(1 << 20);
        // SAFETY: setrlimit reads a struct we own; a refusal leaves the limit as it was.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
}
