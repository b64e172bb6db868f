//! The code-interpreter runner's file API, confined like the file tools:
//! POST /files (multipart, field `files`, several per request), GET /files,
//! GET /files/{path} (download; a directory answers a JSON listing),
//! DELETE /files/{path}. The session comes from the `sessionId` query parameter.

use std::io::Read;

use axum::body::Body;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Multipart, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
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

/// The query string, a malformed one answered with the error envelope.
impl<S: Send + Sync> FromRequestParts<S> for SessionQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(q) = Query::<SessionQuery>::from_request_parts(parts, state).await?;
        Ok(q)
    }
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

/// A multipart body that could not be read: 413 past the body limit, else 400.
fn unreadable(what: &str, e: MultipartError, limit: usize) -> ApiError {
    if let Some(answer) = super::idle_body::stalled_answer(&e) {
        return answer;
    }
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        let why =
            format!("larger than the request body limit of {limit} bytes (SIDECAR_BODY_LIMIT)");
        return ApiError::new(status, format!("{what} is {why}"));
    }
    ApiError::new(status, format!("{what}: {}", e.body_text()))
}

fn session(state: &SharedState, q: &SessionQuery) -> Result<Session, ApiError> {
    Ok(state.workspace.session(q.session_id.as_deref())?)
}

/// POST /files: saves each uploaded file under its base name; dot-files are skipped.
pub async fn upload(
    State(state): State<SharedState>,
    q: SessionQuery,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut multipart = multipart?;
    let limit = state.settings.body_limit;
    let mut files = Vec::new();
    let mut session_id = q.session_id;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| unreadable("the multipart body", e, limit))?
    {
        let name = field.name().unwrap_or("").to_string();
        if name == "sessionId" && field.file_name().is_none() {
            session_id = Some(
                field
                    .text()
                    .await
                    .map_err(|e| unreadable("field `sessionId`", e, limit))?,
            );
            continue;
        }
        let Some(file_name) = field.file_name().map(str::to_string) else {
            continue;
        };
        let data = field
            .bytes()
            .await
            .map_err(|e| unreadable(&format!("upload `{file_name}`"), e, limit))?;
        files.push((file_name, data));
    }
    if files.is_empty() {
        return Err(ApiError::bad_request(
            "no files: send them as multipart field `files`",
        ));
    }
    let uploaded = blocking(move || {
        let session = state.workspace.session(session_id.as_deref())?;
        let kept: Vec<(String, &[u8])> = files
            .iter()
            .filter_map(|(file_name, data)| {
                let base = std::path::Path::new(file_name)
                    .file_name()
                    .map(|b| b.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (!base.is_empty() && !base.starts_with('.')).then_some((base, &data[..]))
            })
            .collect();
        // All saved or none (see Session::create_atomic_all).
        session.create_atomic_all(&kept)?;
        let uploaded = kept
            .iter()
            .map(|(base, data)| {
                json!({
                    "name": base,
                    "path": session.dir().join(base).display().to_string(),
                    "size": data.len(),
                })
            })
            .collect::<Vec<_>>();
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
pub async fn list(State(state): State<SharedState>, q: SessionQuery) -> Result<Response, ApiError> {
    let files = blocking(move || listing(&session(&state, &q)?, "")).await?;
    Ok(Json(json!({ "ok": true, "files": files })).into_response())
}

/// GET /files/{path}
pub async fn download(
    State(state): State<SharedState>,
    path: Result<Path<String>, PathRejection>,
    q: SessionQuery,
) -> Result<Response, ApiError> {
    let Path(path) = path?;
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
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
                (header::CONTENT_DISPOSITION, attachment(&base)),
            ],
            Body::from(data),
        )
            .into_response())
    })
    .await
}

/// `Content-Disposition` for a download named `name` (RFC 6266): a plain ASCII
/// `filename` with anything a header cannot carry or a client could misread replaced
/// by `_`, and the exact name percent-encoded in `filename*` when they differ.
fn attachment(name: &str) -> HeaderValue {
    let plain: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut value = format!("attachment; filename=\"{plain}\"");
    if plain != name {
        value.push_str("; filename*=UTF-8''");
        for b in name.bytes() {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                value.push(b as char);
            } else {
                value.push_str(&format!("%{b:02X}"));
            }
        }
    }
    // Only printable ASCII is left, which a header value always takes.
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("attachment"))
}

/// DELETE /files/{path}
pub async fn delete(
    State(state): State<SharedState>,
    path: Result<Path<String>, PathRejection>,
    q: SessionQuery,
) -> Result<Response, ApiError> {
    let Path(path) = path?;
    blocking(move || {
        let session = session(&state, &q)?;
        session.remove_file(&path).map_err(path_error)?;
        Ok(Json(json!({ "ok": true, "deleted": path })).into_response())
    })
    .await
}
