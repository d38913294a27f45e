//! Running the server: listen, reload on SIGHUP, and shut down gracefully on SIGTERM or
//! Ctrl-C (stop accepting, let requests in flight finish — their queued pairs are scored
//! and their decisions committed —, stop the model threads, close the database).

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::state::AppState;

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
    axum::serve(listener, crate::app(state.clone())).with_graceful_shutdown(shutdown).await?;
    reloader.abort();
    state.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
