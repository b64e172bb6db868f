//! The HTTP API: JSON over HTTP/1.1 on a Unix socket, and optionally TCP, with axum.
//!
//! Endpoints and their handlers live in one file each; this module holds the shared
//! state and the router with its layers (request log and metrics, bearer auth, body
//! limit). Responses follow the coding sidecar's envelope (`{ok, result}` /
//! `{ok:false, error}`), /execute and /files the code-interpreter runner's shapes.

pub mod auth;
pub mod bash;
pub mod error;
pub mod execute;
pub mod files;
pub mod health;
pub mod idle_body;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod reload;
mod repoll;
pub mod server;
pub mod tools;

use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::cli::ServeArgs;
use crate::plugins::{Registry, Runtime};
use crate::runner::Executor;
use crate::workspace::Workspace;

pub use error::ApiError;
pub use server::serve;

/// Everything handlers share.
pub struct AppState {
    pub settings: ServeArgs,
    pub workspace: Workspace,
    pub runtime: Arc<Runtime>,
    /// Swapped whole on reload; a request keeps the `Arc` it started with.
    pub registry: RwLock<Arc<Registry>>,
    /// The last reload error, shown by /languages until a reload succeeds.
    pub reload_error: RwLock<Option<String>>,
    pub executor: Executor,
    pub metrics: metrics::Metrics,
    pub started: Instant,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    /// The registry in force now.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The language a request ran, attached to its response for the request log.
#[derive(Clone)]
pub struct LanguageTag(pub String);

/// Builds the router with every endpoint and layer.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/languages", get(health::languages))
        .route("/metrics", get(health::metrics))
        .route("/bash", post(bash::bash))
        .route("/read", post(tools::read))
        .route("/write", post(tools::write))
        .route("/edit", post(tools::edit))
        .route("/ls", post(tools::ls))
        .route("/find", post(tools::find))
        .route("/grep", post(tools::grep))
        .route("/execute", post(execute::execute))
        .route("/files", get(files::list).post(files::upload))
        .route("/files/", get(files::list))
        .route("/files/{*path}", get(files::download).delete(files::delete))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(state.settings.body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        format!("no endpoint {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Logs one line per request and counts it.
async fn observe(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let method = req.method().clone();
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    // The execution's clean-up jobs are held until the response is out (see
    // `background`): they then go to the clean-up thread as one.
    let (response, held) = crate::exec::background::holding(next.run(req)).await;
    let status = response.status().as_u16();
    let language = response
        .extensions()
        .get::<LanguageTag>()
        .map(|l| l.0.clone());
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    state.metrics.request(&endpoint, status);
    // The held jobs and the request's log line go once the response is out, so that the
    // client does not wait for them (formatting and a write to stderr: ~20 µs here, more
    // when a container runtime reads stderr through a pipe; a wake-up of the clean-up
    // thread). A task spawned here takes this worker's LIFO slot, which runs as soon as
    // the connection's task, which writes the response first, yields. (serve_on lets
    // such tasks run before it returns; were one dropped unrun, its `Held` still lets
    // the jobs go.)
    let log = tracing::enabled!(tracing::Level::INFO);
    if !log && held.is_empty() {
        return response;
    }
    tokio::spawn(async move {
        drop(held);
        if log {
            tracing::info!(
                request_id = id,
                method = %method,
                endpoint = %endpoint,
                language = language.as_deref().unwrap_or(""),
                status,
                duration_ms = format!("{duration_ms:.2}"),
                "request"
            );
        }
    });
    response
}
