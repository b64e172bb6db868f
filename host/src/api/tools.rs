//! POST /read, /write, /edit, /ls, /find, /grep: the coding sidecar's file tools.
//!
//! Each handler picks the session from `sessionId`, decodes the tool's request, and
//! runs the tool (synchronous file I/O): on the request's own worker when a cheap look
//! says the work is small (a file or directory under a size, see [`light`]), else
//! handing the worker's other tasks to another thread first, as /find and /grep always
//! do. A hand-over wakes other threads: ~45 µs of a 145 µs /read here. Success is
//! `{"ok": true, "result": ...}`.

use std::panic::AssertUnwindSafe;

use axum::extract::State;
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ok_result;
use super::json::{in_words, JsonBody};
use super::{ApiError, SharedState};
use crate::runner::blocking_if;
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

/// Runs `tool` on this worker when `light` says the request is small, else through
/// `block_in_place` (`runner::blocking_if`, as /execute writes its files), so that a
/// long walk does not hold up the worker's other tasks. A panicking tool gives a 500.
async fn run_tool<R, F>(
    state: SharedState,
    body: Value,
    light: fn(&Session, &R) -> bool,
    tool: F,
) -> Result<Response, ApiError>
where
    R: DeserializeOwned,
    F: FnOnce(&Session, R) -> Result<Value, ToolError>,
{
    let (session, request) = session_and_request::<R>(&state, body)?;
    let heavy = !light(&session, &request);
    let result = blocking_if(heavy, || {
        std::panic::catch_unwind(AssertUnwindSafe(|| tool(&session, request)))
    })
    .map_err(|e| ApiError::internal(format!("the tool panicked: {}", panic_text(e.as_ref()))))?;
    Ok(ok_result(result.map_err(ApiError::from)?))
}

/// A panic's message, when it has one.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Files up to this size are read, edited or written on the request's worker.
const LIGHT_FILE: u64 = 1 << 20;
/// Directories whose size (`st_size`: ~4 KiB per ~100 entries on ext4, ~20 bytes an
/// entry on tmpfs) is at most this are listed on the request's worker.
const LIGHT_DIR: u64 = 256 << 10;

/// A request on a file of at most [`LIGHT_FILE`] bytes.
fn small_file(session: &Session, path: &Option<String>) -> bool {
    light(session, path.as_deref(), false, LIGHT_FILE)
}

/// Whether `path` is, without following a symlink, a file (or a directory, when `dir`)
/// of at most `max` bytes. Anything else, a symlink or a path that does not resolve,
/// is left to a blocking thread: the tool's own checks then answer as they always did.
fn light(session: &Session, path: Option<&str>, dir: bool, max: u64) -> bool {
    let Some(path) = path else { return false };
    session.metadata(path).is_ok_and(|m| {
        let kind = if dir { m.is_dir() } else { m.is_file() };
        kind && m.len() <= max
    })
}

pub async fn read(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run_tool(
        state,
        body,
        |s, r: &tools::read::ReadRequest| small_file(s, &r.path),
        tools::read::run,
    )
    .await
}

pub async fn write(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run_tool(
        state,
        body,
        |_, r: &tools::write::WriteRequest| {
            r.content
                .as_ref()
                .is_some_and(|c| c.len() as u64 <= LIGHT_FILE)
        },
        tools::write::run,
    )
    .await
}

pub async fn edit(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run_tool(
        state,
        body,
        |s, r: &tools::edit::EditRequest| small_file(s, &r.path),
        tools::edit::run,
    )
    .await
}

pub async fn ls(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run_tool(
        state,
        body,
        |s, r: &tools::ls::LsRequest| light(s, Some(tools::path_or_dot(&r.path)), true, LIGHT_DIR),
        tools::ls::run,
    )
    .await
}

pub async fn find(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run_tool(state, body, |_, _| false, tools::find::run).await
}

pub async fn grep(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    run_tool(state, body, |_, _| false, tools::grep::run).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Workspace;

    #[test]
    fn only_small_files_and_directories_are_light() {
        let root = tempfile::tempdir().unwrap();
        let session = Workspace::new(root.path(), false).session(None).unwrap();
        std::fs::write(root.path().join("small.txt"), "hello\n").unwrap();
        std::fs::write(
            root.path().join("large.txt"),
            vec![b'x'; LIGHT_FILE as usize + 1],
        )
        .unwrap();
        std::fs::create_dir(root.path().join("dir")).unwrap();
        std::os::unix::fs::symlink("small.txt", root.path().join("link")).unwrap();

        assert!(light(&session, Some("small.txt"), false, LIGHT_FILE));
        assert!(!light(&session, Some("large.txt"), false, LIGHT_FILE));
        // The kind must match, symlinks are not looked through, and what does not
        // resolve goes to the blocking thread, whose tool run says why.
        assert!(!light(&session, Some("dir"), false, LIGHT_FILE));
        assert!(light(&session, Some("dir"), true, LIGHT_DIR));
        assert!(light(&session, Some("."), true, LIGHT_DIR));
        assert!(!light(&session, Some("small.txt"), true, LIGHT_DIR));
        assert!(!light(&session, Some("link"), false, LIGHT_FILE));
        assert!(!light(&session, Some("missing"), false, LIGHT_FILE));
        assert!(!light(&session, Some("../outside"), false, LIGHT_FILE));
        assert!(!light(&session, None, false, LIGHT_FILE));
    }
}
