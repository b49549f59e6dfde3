//! `/healthz` and `/metrics` on `daemon.listen`.
//!
//! Health is read from the database on every request, not from memory, so a
//! standby and the active daemon answer the same and a load balancer or
//! monitor can ask either.

use super::signals::Shutdown;
use super::{telemetry, DaemonError};
use crate::store::runs::{self, RunStatus};
use crate::store::{self, lock};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::time::Duration;

/// A health check must answer quickly even when the database hangs.
const DB_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
struct AppState {
    pool: PgPool,
    district: String,
    metrics: PrometheusHandle,
}

/// Binds `listen` (port 0 picks a free port) and serves until `shutdown`.
/// Returns the address really bound.
pub async fn serve(
    listen: SocketAddr,
    pool: PgPool,
    district: String,
    metrics: PrometheusHandle,
    mut shutdown: Shutdown,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), DaemonError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen {
            addr: listen,
            source,
        })?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .with_state(AppState {
            pool,
            district,
            metrics,
        });
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.requested().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the /healthz and /metrics listener stopped");
        }
    });
    tracing::info!(%addr, "listening on {addr} for /healthz and /metrics");
    Ok((addr, task))
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(Ok(held)) = tokio::time::timeout(DB_TIMEOUT, store::latest_held(&state.pool)).await {
        telemetry::set_held_run(held.map(|h| h.run_id));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let (healthy, reason) = health(&state.pool, &state.district).await;
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}: {reason}\n", if healthy { "ok" } else { "unhealthy" }),
    )
}

/// Healthy when the database answers and the latest run succeeded or is in
/// progress (or there has been no run yet: nothing has gone wrong).
async fn health(pool: &PgPool, district: &str) -> (bool, String) {
    match tokio::time::timeout(DB_TIMEOUT, store::ping(pool)).await {
        Err(_) => {
            return (
                false,
                format!(
                    "the database did not answer within {} s",
                    DB_TIMEOUT.as_secs()
                ),
            )
        }
        Ok(Err(e)) => return (false, format!("the database does not answer: {e}")),
        Ok(Ok(())) => {}
    }
    // A hold outranks everything after it: nothing of that night is applied
    // until an admin decides, however later runs went.
    match tokio::time::timeout(DB_TIMEOUT, store::latest_held(pool)).await {
        Err(_) => return (false, "reading the run history timed out".to_string()),
        Ok(Err(e)) => return (false, e.to_string()),
        Ok(Ok(Some(held))) => {
            return (
                false,
                format!(
                    "run {} (night {}) is held by a safety threshold and nothing was applied: {}; \
                     see `student-sync approve {} --dry-run`, then approve or discard it",
                    held.run_id,
                    held.night,
                    held.reason.replace('\n', "; "),
                    held.run_id
                ),
            )
        }
        Ok(Ok(None)) => {}
    }
    let latest = match tokio::time::timeout(DB_TIMEOUT, runs::latest_full_run(pool)).await {
        Err(_) => return (false, "reading the run history timed out".to_string()),
        Ok(Err(e)) => return (false, e.to_string()),
        Ok(Ok(latest)) => latest,
    };
    let Some(run) = latest else {
        return (true, "no run yet".to_string());
    };
    let what = format!("run {} (night {}, {})", run.id, run.night, run.trigger);
    match run.status {
        RunStatus::Succeeded => (
            true,
            format!(
                "last {what} succeeded{}",
                run.finished_at
                    .map(|t| format!(" at {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
                    .unwrap_or_default()
            ),
        ),
        RunStatus::Running => {
            // A row left `running` by a dead process is not progress: the
            // run lock tells the two apart.
            let alive = lock::run_lock_held(pool, district).await.unwrap_or(true);
            if alive {
                (true, format!("{what} in progress, phase {}", run.phase))
            } else {
                (
                    false,
                    format!(
                        "{what} was left running in phase {} by a process that is gone; \
                         the daemon resumes it when it becomes active",
                        run.phase
                    ),
                )
            }
        }
        RunStatus::Failed => (
            false,
            format!(
                "last {what} failed: {}",
                run.error.as_deref().unwrap_or("no error recorded")
            ),
        ),
        other => (
            false,
            format!(
                "last {what} is {other} (phase {}){}",
                run.phase,
                run.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        ),
    }
}
