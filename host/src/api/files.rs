//! The code-interpreter runner's file API, confined like the file tools:
//! POST /files (multipart, field `files`, several per request), GET /files,
//! GET /files/{path} (download; a directory answers a JSON listing),
//! DELETE /files/{path}. The session comes from the `sessionId` query parameter.

use std::io::Read;

use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, SharedState};
use crate::workspace::{Session, ToolError, ToolErrorKind};

#[derive(Deserialize)]
pub struct SessionQuery {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("file operation panicked: {e}")))?
}

/// The runner's statuses for a path: 404 when it is missing, 403 when it escapes the
/// session or goes through a symlink (the file tools answer 400 for both).
fn path_error(e: ToolError) -> ApiError {
    let status = match e.kind {
        ToolErrorKind::NotFound => StatusCode::NOT_FOUND,
        ToolErrorKind::Forbidden => StatusCode::FORBIDDEN,
        _ => return e.into(),
    };
    ApiError::new(status, e.message)
}

fn session(state: &SharedState, q: &SessionQuery) -> Result<Session, ApiError> {
    Ok(state.workspace.session(q.session_id.as_deref())?)
}

/// POST /files: saves each uploaded file under its base name; dot-files are skipped.
pub async fn upload(
    State(state): State<SharedState>,
    Query(q): Query<SessionQuery>,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let mut files = Vec::new();
    let mut session_id = q.session_id;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?
    {
        let name = field.name().unwrap_or("").to_string();
        if name == "sessionId" && field.file_name().is_none() {
            session_id = Some(
                field
                    .text()
                    .await
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
            );
            continue;
        }
        let Some(file_name) = field.file_name().map(str::to_string) else {
            continue;
        };
        let data = field.bytes().await.map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read upload `{file_name}`: {e}"),
            )
        })?;
        files.push((file_name, data));
    }
    if files.is_empty() {
        return Err(ApiError::bad_request(
            "no files: send them as multipart field `files`",
        ));
    }
    let uploaded = blocking(move || {
        let session = state.workspace.session(session_id.as_deref())?;
        let mut uploaded = Vec::new();
        for (file_name, data) in files {
            let base = std::path::Path::new(&file_name)
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_default();
            if base.is_empty() || base.starts_with('.') {
                continue;
            }
            session.create_atomic(&base, &data)?;
            uploaded.push(json!({
                "name": base,
                "path": session.dir().join(&base).display().to_string(),
                "size": data.len(),
            }));
        }
        Ok(uploaded)
    })
    .await?;
    Ok(Json(json!({ "ok": true, "uploaded": uploaded })).into_response())
}

/// Lists regular files under `dir` (relative to the session), recursively, never
/// following symlinks.
fn listing(session: &Session, rel: &str) -> Result<Vec<Value>, ApiError> {
    let root = session.walk_root(rel).map_err(path_error)?;
    let mut out = Vec::new();
    let mut stack = vec![(root.path().to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel_name = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push((entry.path(), rel_name));
            } else if meta.is_file() {
                let shown = if rel.is_empty() || rel == "." {
                    rel_name.clone()
                } else {
                    format!("{}/{rel_name}", rel.trim_end_matches('/'))
                };
                out.push(json!({
                    "name": rel_name,
                    "path": session.dir().join(&shown).display().to_string(),
                    "size": meta.len(),
                }));
            }
        }
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(out)
}

/// GET /files
pub async fn list(
    State(state): State<SharedState>,
    Query(q): Query<SessionQuery>,
) -> Result<Response, ApiError> {
    let files = blocking(move || listing(&session(&state, &q)?, "")).await?;
    Ok(Json(json!({ "ok": true, "files": files })).into_response())
}

/// GET /files/{path}
pub async fn download(
    State(state): State<SharedState>,
    Path(path): Path<String>,
    Query(q): Query<SessionQuery>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let session = session(&state, &q)?;
        let meta = session.metadata(&path).map_err(path_error)?;
        if meta.is_dir() {
            let files = listing(&session, &path)?;
            return Ok(Json(json!({ "ok": true, "path": path, "files": files })).into_response());
        }
        let mut file = session.open_read(&path).map_err(path_error)?;
        let mut data = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut data)
            .map_err(|e| ApiError::internal(format!("cannot read {path}: {e}")))?;
        let base = std::path::Path::new(&path)
            .file_name()
            .map(|b| b.to_string_lossy().replace('"', ""))
            .unwrap_or_default();
        Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{base}\""),
                ),
            ],
            Body::from(data),
        )
            .into_response())
    })
    .await
}

/// DELETE /files/{path}
pub async fn delete(
    State(state): State<SharedState>,
    Path(path): Path<String>,
    Query(q): Query<SessionQuery>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let session = session(&state, &q)?;
        session.remove_file(&path).map_err(path_error)?;
        Ok(Json(json!({ "ok": true, "deleted": path })).into_response())
    })
    .await
}
