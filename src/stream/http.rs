//! The operations endpoint: `/metrics`, `/healthz`, `/readyz`. Binds to loopback unless configured otherwise.

use super::metrics::Metrics;
use crate::refresh::{RefreshMetrics, SnapshotCell};
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
    let loaded = s.cell.load().version() > 0;
    let assigned = s.metrics.assigned_partitions.load(Ordering::Relaxed) > 0;
    if loaded && assigned {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: snapshot loaded={loaded}, partitions assigned={assigned}\n"),
        )
    }
}

/// Serves until the listener fails; returns the bound address.
pub async fn serve(listen: &str, state: Arc<OpsState>) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics endpoint stopped: {e}");
        }
    });
    Ok(addr)
}
