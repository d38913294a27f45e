//! Running the server: listen, reload on SIGHUP, and shut down gracefully on SIGTERM or
//! Ctrl-C (stop accepting, let requests in flight finish — their queued pairs are scored
//! and their decisions committed —, stop the model threads, close the database).
//!
//! Connections are bounded so that slow or idle clients cannot hold the server: a client
//! has `--header-read-timeout-secs` to send a request's headers (and an idle keep-alive
//! connection is closed after as long), a request has `--request-timeout-secs` from its
//! headers to its response (see [`crate::app`]), and at most `--max-connections` are open
//! at once (lowered to fit the open-file limit, so that accepting never fails for lack of
//! descriptors); further clients wait in the listen backlog until one closes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::config::ConnectionLimits;
use crate::state::AppState;

/// Descriptors kept free for everything but client connections (database, model files,
/// logs, the listener).
const RESERVED_FILES: usize = 64;
/// Longest the shutdown waits for open connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `state` on `listener` until SIGTERM or Ctrl-C, then drains and closes.
pub async fn run(state: AppState, listener: TcpListener) -> std::io::Result<()> {
    let mut hangups = signal(SignalKind::hangup())?;
    let registry = state.scorer.registry().clone();
    let reloader = tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the model");
            // The outcome (swap or refusal) is logged by the registry.
            let _ = registry.reload(None).await;
        }
    });

    let mut terminate = signal(SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down: finishing requests in flight");
    };
    let limits = state.config.connection_limits();
    serve(listener, crate::app(state.clone()), limits, shutdown).await;
    reloader.abort();
    state.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Serves `app` over HTTP/1 on `listener` within `limits` until `shutdown` completes, then
/// stops accepting and waits (at most [`DRAIN_TIMEOUT`]) for open connections to finish
/// their requests. Handlers see the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(listener: TcpListener, app: Router, limits: ConnectionLimits, shutdown: impl Future<Output = ()>) {
    let max_connections = fit_to_open_file_limit(limits.max_connections);
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the cap, new clients wait in the backlog, not in our memory.
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Out of descriptors or memory: back off rather than spin.
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = app.clone().map_request(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            // Timeouts and clients going away end connections with an error; nothing to do.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, peer = %peer, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("connections still open after {} s; closing them", DRAIN_TIMEOUT.as_secs());
        }
    }
}

/// Errors of one connection that the accept loop just skips.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// `wanted`, lowered so that the connections fit the process's open-file limit with
/// [`RESERVED_FILES`] to spare (said in the log when it is lowered).
fn fit_to_open_file_limit(wanted: usize) -> usize {
    let Some(limit) = open_file_limit() else { return wanted };
    let fits = limit.saturating_sub(RESERVED_FILES).max(limit / 2).max(1);
    if fits < wanted {
        tracing::warn!(
            wanted,
            serving = fits,
            open_file_limit = limit,
            "--max-connections lowered to fit the open-file limit (raise it with `ulimit -n`)"
        );
        return fits;
    }
    wanted
}

/// The soft limit on open files (Linux: from /proc/self/limits).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_the_open_file_limit() {
        if let Some(limit) = open_file_limit() {
            assert!(fit_to_open_file_limit(usize::MAX) < limit);
            assert_eq!(fit_to_open_file_limit(1), 1);
        }
    }
}
