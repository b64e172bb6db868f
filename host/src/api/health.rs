//! GET /health, /ready, /languages and /metrics: what operators and orchestrators poll.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::SharedState;

/// Liveness: `{ok, version, ...}` (unwrapped, as the coding sidecar answers), plus the
/// runner's `status: "healthy"` and the sandbox protections in force.
pub async fn health(State(state): State<SharedState>) -> Response {
    let registry = state.registry();
    Json(json!({
        "ok": true,
        "status": "healthy",
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "languages": registry.codes(),
        "protections": state.executor.sandbox.report(),
    }))
    .into_response()
}

/// Readiness: 200 when the workspace is writable and plugins are loaded, else 503
/// with the reason.
pub async fn ready(State(state): State<SharedState>) -> Response {
    let registry = state.registry();
    let mut problems = Vec::new();
    if let Err(e) = check_writable(&state.workspace.root) {
        problems.push(format!("workspace not writable: {e}"));
    }
    if registry.codes().is_empty() {
        let why = registry
            .plugins
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        problems.push(format!("no language is loaded{why}"));
    }
    if problems.is_empty() {
        Json(json!({"ok": true, "status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ok": false, "status": "not ready", "error": problems.join("; ")})),
        )
            .into_response()
    }
}

/// Creates and removes a file in the workspace root.
fn check_writable(root: &std::path::Path) -> std::io::Result<()> {
    let probe = root.join(format!(".sidecar-ready-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// Every language with its plugin and toolchain, plus load errors.
pub async fn languages(State(state): State<SharedState>) -> Response {
    let registry = state.registry();
    let languages: Vec<_> = registry
        .languages()
        .map(|l| {
            let s = &l.settings;
            let missing = s.missing_program();
            json!({
                "code": s.code,
                "name": s.name,
                "aliases": s.aliases,
                "plugin": l.plugin.info.name,
                "pluginVersion": l.plugin.info.version,
                "pluginSha256": l.plugin.sha256,
                "pluginFile": l.plugin.path.display().to_string(),
                "pluginFromCache": l.plugin.from_cache,
                "interface": l.plugin.interface,
                "fileExtension": s.file_extension,
                "compiles": s.compile_command.is_some(),
                "image": s.image,
                "userId": s.user_id,
                "network": s.network,
                "timeoutMultiplier": s.timeout_multiplier,
                "memoryMultiplier": s.memory_multiplier,
                "toolchainAvailable": missing.is_none(),
                "missingProgram": missing,
                "error": null,
            })
        })
        .chain(
            registry
                .language_errors
                .iter()
                .map(|e| json!({"code": e.code, "toolchainAvailable": false, "error": e.error})),
        )
        .collect();
    let errors: Vec<_> = registry
        .plugins
        .errors
        .iter()
        .map(|e| json!({"file": e.file, "error": e.message}))
        .collect();
    let reload_error = state
        .reload_error
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Json(json!({
        "ok": true,
        "languages": languages,
        "pluginErrors": errors,
        "warnings": registry.warnings,
        "reloadError": reload_error,
    }))
    .into_response()
}

/// Prometheus text format.
pub async fn metrics(State(state): State<SharedState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(
            state.executor.limiter.running(),
            state.executor.limiter.queued(),
        ),
    )
        .into_response()
}
