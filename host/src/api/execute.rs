//! POST /execute: run code in a language through its plugin's plan.
//!
//! The response is flat (the code-interpreter runner's clients read `exit_code`,
//! `stdout`, `stderr`, `execution_time_ms` at the top level) and adds the per-stage
//! detail. `ok: false` only when the request could not be run at all.

use std::path::PathBuf;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::json::JsonBody;
use super::tools::session_and_request;
use super::{ApiError, LanguageTag, SharedState};
use crate::runner::snapshot::ChangedFile;
use crate::runner::{blocking_if, ExecuteError, ExecuteRequest, Stage, Status};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecuteBody {
    language: Option<String>,
    code: String,
    #[serde(default)]
    files: Vec<InputFile>,
    stdin: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(alias = "timeout")]
    timeout_seconds: Option<f64>,
    #[serde(alias = "working_dir")]
    working_dir: Option<String>,
}

#[derive(Deserialize)]
struct InputFile {
    path: String,
    content: String,
    #[serde(default)]
    encoding: Encoding,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    #[default]
    #[serde(alias = "utf-8")]
    Utf8,
    Base64,
}

/// The flat success response (docs/api.md), serialized straight from the outcome:
/// no copy of the outputs on the way.
#[derive(Serialize)]
struct Executed<'a> {
    ok: bool,
    language: &'a str,
    status: Status,
    compile: &'a Option<Stage>,
    run: &'a Option<Stage>,
    files: &'a [ChangedFile],
    exit_code: i32,
    stdout: &'a str,
    stderr: &'a str,
    execution_time_ms: u64,
}

/// The language a request names, else the server's default.
fn language_name(state: &SharedState, given: Option<String>) -> Result<String, ApiError> {
    given
        .filter(|l| !l.trim().is_empty())
        .or_else(|| state.settings.default_language.clone())
        .or_else(|| std::env::var("LANGUAGE").ok().filter(|l| !l.is_empty()))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`language` is required (no default language is set); available: {}",
                state.registry().codes().join(", ")
            ))
        })
}

pub async fn execute(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    // A few small file operations, done on this worker; writing the caller's files may
    // take longer, and then goes through `block_in_place` (see `blocking_if`).
    let heavy = body
        .get("files")
        .and_then(Value::as_array)
        .is_some_and(|files| !files.is_empty());
    let prepared = blocking_if(heavy, || prepare(&state, body))?;
    let (language, request) = prepared;
    let code = language.settings.code.clone();
    let started = std::time::Instant::now();
    let result = state.executor.execute(&language, request).await;
    let tag = LanguageTag(code.clone());
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            let plugin_outcome = match &e {
                ExecuteError::Rejected(_) => Some("refused"),
                ExecuteError::PluginFailed(_) => Some("failed"),
                _ => None,
            };
            if let Some(outcome) = plugin_outcome {
                state
                    .metrics
                    .plugin_call(&language.plugin.info.name, outcome, started.elapsed());
            }
            let (status, retry) = match &e {
                ExecuteError::Busy => (StatusCode::SERVICE_UNAVAILABLE, Some(1)),
                ExecuteError::MissingProgram(_) | ExecuteError::HiddenProgram { .. } => {
                    (StatusCode::SERVICE_UNAVAILABLE, None)
                }
                ExecuteError::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, None),
                ExecuteError::PluginFailed(_) | ExecuteError::Internal(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, None)
                }
            };
            let message = match &e {
                ExecuteError::MissingProgram(p) => format!(
                    "the {} toolchain is not installed: `{p}` was not found",
                    language.settings.name
                ),
                hidden @ ExecuteError::HiddenProgram { .. } => {
                    format!(
                        "the {} toolchain is not usable: {hidden}",
                        language.settings.name
                    )
                }
                other => other.to_string(),
            };
            let mut err = ApiError::new(status, message);
            err.retry_after = retry;
            let mut response = err.into_response();
            response.extensions_mut().insert(tag);
            return Ok(response);
        }
    };
    let total_ms = outcome.compile.as_ref().map(|s| s.duration_ms).unwrap_or(0)
        + outcome.run.as_ref().map(|s| s.duration_ms).unwrap_or(0);
    state.metrics.execution(
        &code,
        outcome.status.as_str(),
        std::time::Duration::from_millis(total_ms),
    );
    state
        .metrics
        .plugin_call(&language.plugin.info.name, "ok", outcome.plan_duration);
    let decisive = outcome.decisive();
    let body = Executed {
        ok: true,
        language: &code,
        status: outcome.status,
        compile: &outcome.compile,
        run: &outcome.run,
        files: &outcome.files,
        exit_code: outcome.exit_code().unwrap_or(-1),
        stdout: decisive.map(|s| s.stdout.as_str()).unwrap_or(""),
        stderr: decisive.map(|s| s.stderr.as_str()).unwrap_or(""),
        execution_time_ms: total_ms,
    };
    let mut response = Json(body).into_response();
    response.extensions_mut().insert(tag);
    Ok(response)
}

/// Validates the request, resolves the language and the work dir, and writes the
/// caller's files there (confined to the session).
fn prepare(
    state: &SharedState,
    body: Value,
) -> Result<(std::sync::Arc<crate::plugins::Language>, ExecuteRequest), ApiError> {
    let (session, req): (_, ExecuteBody) = session_and_request(state, body)?;
    // A NUL byte cannot be passed to a program: the caller's fault (400), not the
    // plugin's (its plan would be refused as invalid, a 500 naming the plugin).
    if let Some(i) = req.args.iter().position(|a| a.contains('\0')) {
        return Err(ApiError::bad_request(format!(
            "`args[{i}]` contains a NUL byte, which no program can receive"
        )));
    }
    let name = language_name(state, req.language)?;
    let registry = state.registry();
    let language = registry.resolve(&name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown language `{name}`; available: {}",
            registry.codes().join(", ")
        ))
    })?;
    // The work dir, and a descriptor of it opened through the confined session: the
    // runner uses that, never the path again (code of this session may swap the path
    // for a symlink while the execution waits for a slot).
    // (The session's own descriptor, when the work dir is the session dir: taken at
    // the end.)
    let (work_dir, work_dir_fd): (PathBuf, _) =
        match req.working_dir.as_deref().filter(|d| !d.is_empty()) {
            None => (session.dir().to_path_buf(), None),
            Some(dir) => {
                let fd = session.mkdir_all(dir)?;
                (session.dir().join(session.resolve(dir)?), Some(fd))
            }
        };
    let work_rel = work_dir
        .strip_prefix(session.dir())
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let mut files = Vec::with_capacity(req.files.len());
    for f in req.files {
        let content = match f.encoding {
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(f.content.as_bytes())
                .map_err(|e| {
                    ApiError::bad_request(format!("file `{}`: invalid base64: {e}", f.path))
                })?,
            Encoding::Utf8 => f.content.into_bytes(),
        };
        if std::path::Path::new(&f.path).is_absolute() {
            return Err(ApiError::bad_request(format!(
                "file `{}`: the path must be relative to the work dir",
                f.path
            )));
        }
        files.push((f.path, content));
    }
    // All written or none: a file that cannot be (no space left, a directory in its
    // place) leaves the others as they were.
    let targets: Vec<(String, &[u8])> = files
        .iter()
        .map(|(path, content)| {
            let rel = work_rel.join(path).to_string_lossy().into_owned();
            (rel, content.as_slice())
        })
        .collect();
    session.create_atomic_all(&targets)?;
    let work_dir_fd = work_dir_fd.unwrap_or_else(|| session.into_dir_fd());
    Ok((
        language,
        ExecuteRequest {
            code: req.code,
            files,
            stdin: req.stdin.map(String::into_bytes),
            args: req.args,
            timeout: req.timeout_seconds,
            work_dir,
            work_dir_fd: Some(work_dir_fd),
        },
    ))
}
