//! The operations endpoint: `/metrics`, `/healthz`, `/readyz`. Binds to loopback unless configured otherwise.

use super::metrics::Metrics;
use crate::refresh::RefreshMetrics;
use crate::shutdown::Shutdown;
use crate::snapshot::SnapshotCell;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub struct OpsState {
    pub metrics: Arc<Metrics>,
    pub cell: Arc<SnapshotCell>,
    pub refresh: Arc<RefreshMetrics>,
}

async fn metrics(State(s): State<Arc<OpsState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(&s.cell, &s.refresh),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready once a snapshot is loaded and partitions are assigned.
async fn readyz(State(s): State<Arc<OpsState>>) -> impl IntoResponse {
    let snap = s.cell.load();
    let loaded = snap.version() > 0;
    let assigned = s.metrics.assigned_partitions.load(Ordering::Relaxed) > 0;
    let base = snap.base();
    let serving = format!(
        "snapshot v{} ({} indicators; base v{} build {:016x}{}{})",
        snap.version(),
        snap.len(),
        base.version(),
        base.build_id(),
        base.path()
            .map(|p| format!(" mapped from {}", p.display()))
            .unwrap_or_default(),
        snap.overlay()
            .map(|o| format!("; overlay of {} changes", o.weight()))
            .unwrap_or_default(),
    );
    if loaded && assigned {
        (StatusCode::OK, format!("ready: {serving}\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: snapshot loaded={loaded}, partitions assigned={assigned}; {serving}\n"),
        )
    }
}

/// Serves until `shutdown` fires (finishing requests in progress) or the listener fails; returns the bound address
/// and the serving task.
pub async fn serve(
    listen: &str,
    state: Arc<OpsState>,
    shutdown: Shutdown,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state);
    let task = tokio::spawn(async move {
        let stop = async move { shutdown.wait().await };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
            tracing::error!("metrics endpoint stopped: {e}");
        }
    });
    Ok((addr, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Snapshot;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn the_endpoint_stops_with_the_shutdown_signal() {
        let state = Arc::new(OpsState {
            metrics: Arc::new(Metrics::default()),
            cell: Arc::new(SnapshotCell::new(Snapshot::empty())),
            refresh: Arc::new(RefreshMetrics::default()),
        });
        let shutdown = Shutdown::new();
        let (addr, task) = serve("127.0.0.1:0", state, shutdown.clone()).await.unwrap();
        assert!(addr.ip().is_loopback());
        assert!(get(addr, "/healthz").await.unwrap().ends_with("ok\n"));
        assert!(get(addr, "/metrics").await.unwrap().contains("iocmatch_lines_total"));
        shutdown.trigger();
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the server task ends")
            .unwrap();
        assert!(get(addr, "/healthz").await.is_err(), "nothing listens any more");
    }
}
