//! `/healthz` and `/metrics` on `daemon.listen`.
//!
//! Health is read from the database by a background task (every
//! `daemon.health_refresh_secs`, and at once when a run ends), not on every
//! request: a request answers from that cached state, so asking often costs
//! the database nothing and a hanging database cannot hang the answer. It
//! is read from the run history, not from this process's memory, so a
//! standby and the active daemon answer the same.

use super::signals::Shutdown;
use super::{telemetry, DaemonError};
use crate::config::Settings;
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
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// A health check must answer quickly even when the database hangs.
const DB_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
struct AppState {
    pool: PgPool,
    metrics: PrometheusHandle,
    /// The last health answer: healthy, and why.
    health: Arc<RwLock<(bool, String)>>,
}

/// Binds `daemon.listen` (port 0 picks a free port; an address other than
/// loopback only with `daemon.allow_remote_listen`) and serves until
/// `shutdown`. Returns the address really bound.
pub async fn serve(
    settings: &Settings,
    pool: PgPool,
    metrics: PrometheusHandle,
    refresh_now: Arc<Notify>,
    mut shutdown: Shutdown,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), DaemonError> {
    let listen = settings.daemon.listen;
    if !listen.ip().is_loopback() && !settings.daemon.allow_remote_listen {
        return Err(DaemonError::RemoteListen { addr: listen });
    }
    let health = Arc::new(RwLock::new((true, "starting".to_string())));
    let limits = HealthLimits {
        district: settings.district.clone(),
        run_deadline: settings.sync.run_deadline,
    };
    *write(&health) = health_now(&pool, &limits).await;
    tokio::spawn(refresh(
        pool.clone(),
        limits,
        health.clone(),
        settings.daemon.health_refresh,
        refresh_now,
        shutdown.clone(),
    ));
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
            metrics,
            health,
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

/// What health is judged against.
struct HealthLimits {
    district: String,
    run_deadline: Duration,
}

fn write(health: &RwLock<(bool, String)>) -> std::sync::RwLockWriteGuard<'_, (bool, String)> {
    health.write().unwrap_or_else(|p| p.into_inner())
}

/// Keeps the cached health answer fresh until `shutdown`.
async fn refresh(
    pool: PgPool,
    limits: HealthLimits,
    health: Arc<RwLock<(bool, String)>>,
    every: Duration,
    now: Arc<Notify>,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = now.notified() => {}
            _ = shutdown.requested() => return,
        }
        let answer = health_now(&pool, &limits).await;
        *write(&health) = answer;
    }
}

/// The health answer from the database now, a run past its deadline unhealthy.
async fn health_now(pool: &PgPool, limits: &HealthLimits) -> (bool, String) {
    let (healthy, reason) = health(pool, &limits.district).await;
    if !healthy {
        return (healthy, reason);
    }
    if let Ok(Ok(Some(run))) = tokio::time::timeout(DB_TIMEOUT, runs::current_running(pool)).await {
        let running_for = (chrono::Utc::now() - run.started_at)
            .to_std()
            .unwrap_or_default();
        if running_for > limits.run_deadline {
            return (
                false,
                format!(
                    "run {} has been running for {} min, past its deadline of {} min \
                     (sync.run_deadline_mins)",
                    run.id,
                    running_for.as_secs() / 60,
                    limits.run_deadline.as_secs() / 60
                ),
            );
        }
    }
    (healthy, reason)
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let (healthy, reason) = state
        .health
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
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
