//! POST /read, /write, /edit, /ls, /find, /grep: the coding sidecar's file tools.
//!
//! Each handler picks the session from `sessionId`, decodes the tool's request, and
//! runs the tool (synchronous file I/O) on a blocking thread. Success is
//! `{"ok": true, "result": ...}`.

use axum::extract::State;
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ok_result;
use super::json::{in_words, JsonBody};
use super::{ApiError, SharedState};
use crate::tools;
use crate::workspace::{Session, ToolError};

/// Splits a request body into its session and the tool's own request.
pub fn session_and_request<R: DeserializeOwned>(
    state: &SharedState,
    body: Value,
) -> Result<(Session, R), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let session_id = match body.get("sessionId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::bad_request("`sessionId` must be a string")),
    };
    let request: R = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let message = in_words(&e.inner().to_string());
        ApiError::bad_request(if path == "." {
            format!("invalid request: {message}")
        } else {
            format!("invalid request: `{path}`: {message}")
        })
    })?;
    let session = state.workspace.session(session_id.as_deref())?;
    Ok((session, request))
}

async fn run_tool<R, F>(state: SharedState, body: Value, tool: F) -> Result<Response, ApiError>
where
    R: DeserializeOwned + Send + 'static,
    F: FnOnce(&Session, R) -> Result<Value, ToolError> + Send + 'static,
{
    let result = tokio::task::spawn_blocking(move || {
        let (session, request) = session_and_request::<R>(&state, body)?;
        tool(&session, request).map_err(ApiError::from)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the tool panicked: {e}")))??;
    Ok(ok_result(result))
}

pub async fn read(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run_tool(state, body, tools::read::run).await
}

pub async fn write(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run_tool(state, body, tools::write::run).await
}

pub async fn edit(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run_tool(state, body, tools::edit::run).await
}

pub async fn ls(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run_tool(state, body, tools::ls::run).await
}

pub async fn find(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run_tool(state, body, tools::find::run).await
}

pub async fn grep(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run_tool(state, body, tools::grep::run).await
}
