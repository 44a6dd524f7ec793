//! The REST API, with Patroni's paths, codes and JSON.
//!
//! `router(state)` builds the whole API so that tests can call it without
//! a socket; `serve` binds it. HTTP shapes live here and nowhere else:
//! handlers build them from `NodeStatus` and model types.

// Handlers return early with the answer: a `Result<_, Response>` reads
// best, and a response is built once per request, so its size is moot.
#[allow(clippy::result_large_err)]
pub mod actions;
#[cfg(test)]
mod fuzz_tests;
pub mod health;
pub mod live;
#[allow(clippy::result_large_err)]
pub mod reply;
#[cfg(test)]
mod router_tests;
pub mod security;
pub mod serve;
pub mod status_json;
pub mod ui;
#[allow(clippy::result_large_err)]
pub mod views;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::runner::Shared;
use crate::status::{NodeStatus, PgSnapshot, StatusBoard};

/// What handlers read.
#[derive(Clone)]
pub struct ApiState {
    pub status: StatusBoard,
    /// The running daemon (absent in tests that only serve a status).
    pub shared: Option<Arc<Shared>>,
    /// The access rules in force (see `security`).
    security: security::Cache,
    /// The live PostgreSQL status `/patroni` and `/metrics` share.
    live: Arc<live::LiveStatus>,
}

impl ApiState {
    pub fn new(status: StatusBoard, shared: Option<Arc<Shared>>) -> Self {
        Self { status, shared, security: security::Cache::default(), live: Arc::default() }
    }
}

type Params = Query<Vec<(String, String)>>;

fn json_response(code: u16, body: serde_json::Value) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(body)).into_response()
}

async fn health_get(State(st): State<ApiState>, uri: Uri, Query(q): Params) -> Response {
    let s = st.status.get();
    let body = status_json::status_json(&s, None);
    let code = health::health_code(uri.path(), &q, &s, &body);
    json_response(code, serde_json::Value::Object(body))
}

async fn health_code_only(State(st): State<ApiState>, uri: Uri, Query(q): Params) -> Response {
    let s = st.status.get();
    let body = status_json::status_json(&s, None);
    let code = health::health_code(uri.path(), &q, &s, &body);
    StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE).into_response()
}

/// PostgreSQL's status read live for a request that arrived at `arrived`
/// (one query shared by concurrent requests, see `live`), or `None`
/// when PostgreSQL is not running or does not answer.
async fn live_pg(st: &ApiState, s: &NodeStatus, arrived: std::time::Instant) -> Option<PgSnapshot> {
    match &st.shared {
        Some(shared) if s.pg.is_some() => {
            st.live.get(arrived, live::Key::of(s), live::window_for(s), || shared.pg.snapshot_quick()).await
        }
        _ => None,
    }
}

/// `GET /patroni`: the status with WAL positions read live (the leader
/// race compares them), falling back to the cached ones.
async fn patroni(State(st): State<ApiState>) -> Response {
    let arrived = std::time::Instant::now();
    let s = st.status.get();
    let live = live_pg(&st, &s, arrived).await;
    json_response(200, serde_json::Value::Object(status_json::status_json(&s, live.as_ref())))
}

async fn liveness(State(st): State<ApiState>) -> Response {
    StatusCode::from_u16(health::liveness_code(&st.status.get()))
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
        .into_response()
}

async fn readiness(State(st): State<ApiState>, Query(q): Params) -> Response {
    match health::readiness_failure(&q, &st.status.get()) {
        None => StatusCode::OK.into_response(),
        Some(why) => {
            tracing::debug!("Readiness check failure: {why}");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

async fn fallback(st: State<ApiState>, method: axum::http::Method, uri: Uri, q: Params) -> Response {
    match method {
        axum::http::Method::GET => health_get(st, uri, q).await,
        axum::http::Method::HEAD | axum::http::Method::OPTIONS => health_code_only(st, uri, q).await,
        _ => reply::code_only(501),
    }
}

/// The whole API.
pub fn router(state: ApiState) -> Router {
    let mut r = Router::new()
        .route("/patroni", get(patroni))
        .route("/liveness", get(liveness).head(liveness).options(liveness))
        .route("/readiness", get(readiness).head(readiness).options(readiness))
        .route("/cluster", get(views::cluster))
        .route("/history", get(views::history))
        .route("/config", get(views::config).patch(actions::patch_config_handler).put(actions::put_config))
        .route("/failsafe", get(views::failsafe).post(actions::failsafe_heartbeat))
        .route("/metrics", get(views::metrics))
        .route("/switchover", post(actions::switchover).delete(actions::cancel_switchover))
        .route("/failover", post(actions::failover))
        .route("/restart", post(actions::restart).delete(actions::cancel_restart))
        .route("/reload", post(actions::reload))
        .route("/reinitialize", post(actions::reinitialize))
        .route("/mpp", post(actions::mpp))
        .route("/citus", post(actions::mpp))
        .route("/ui", get(ui::ui))
        // `/` stays Patroni's health check; browsers get the status page.
        .route("/", get(ui::root).head(health_code_only).options(health_code_only));
    for path in health::HEALTH_PATHS.iter().filter(|p| **p != "/") {
        r = r.route(path, get(health_get).head(health_code_only).options(health_code_only));
    }
    // As in Patroni, a GET, HEAD or OPTIONS of any other path is a health
    // check judged by the words in the path (`/master`, `/replica/x`...).
    // A method an endpoint does not serve is answered the same way (axum's
    // 405 is no answer Patroni gives: GET of `/switchover` is a health
    // check there, `DELETE /patroni` a 501).
    r = r.fallback(fallback).method_not_allowed_fallback(fallback);
    r.layer(axum::middleware::from_fn_with_state(state.clone(), security::guard)).with_state(state)
}

pub use serve::serve;
