//! POST /bash: `/bin/sh -c` in the session dir, streamed as NDJSON: `delta` lines per
//! stream as output arrives, then one `done` line (or `error`).
//!
//! The command runs through the same executor as /execute (own process group and
//! cgroup, clean environment, limits). When the client disconnects, the response
//! stream is dropped, which aborts the task, which kills every process of the command.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::json::JsonBody;
use super::tools::session_and_request;
use super::{ApiError, SharedState};
use crate::runner::{signal_name, ExecuteError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BashRequest {
    #[serde(default)]
    command: Option<String>,
    timeout_seconds: Option<f64>,
}

/// Default timeout, as the coding sidecar's.
const DEFAULT_TIMEOUT_SECS: f64 = 300.0;

pub async fn bash(
    State(state): State<SharedState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    // (Decoding and the session's directory: a few system calls, done on this worker.)
    let (session, req): (_, BashRequest) = session_and_request(&state, body)?;
    // The original's words for a missing, null or blank field.
    let command = match req.command {
        Some(c) if !c.trim().is_empty() => c,
        _ => return Err(ApiError::bad_request("Missing or invalid command")),
    };
    let max = state.settings.exec.max_timeout as f64;
    let timeout = match req.timeout_seconds {
        Some(t) if t > 0.0 && t.is_finite() => t.min(max),
        Some(t) if t.is_finite() => DEFAULT_TIMEOUT_SECS.min(max),
        Some(_) => return Err(ApiError::bad_request("`timeoutSeconds` must be a number")),
        None => DEFAULT_TIMEOUT_SECS.min(max),
    };
    // Refuse at once when busy, before the stream starts, so the client gets a 503.
    let limiter = &state.executor.limiter;
    if limiter.running() >= limiter.max_running() && limiter.queued() >= limiter.max_queued() {
        return Err(busy());
    }
    let (line_tx, line_rx) = mpsc::channel::<Bytes>(64);
    let dir = session.dir().to_path_buf();
    let task = tokio::spawn(async move {
        let (chunk_tx, mut chunk_rx) = mpsc::channel(64);
        let exec = state.executor.shell(
            command,
            &dir,
            Duration::from_secs_f64(timeout),
            state.settings.exec.bash_user_id,
            state.settings.exec.bash_network,
            chunk_tx,
        );
        tokio::pin!(exec);
        let result = loop {
            tokio::select! {
                Some(chunk) = chunk_rx.recv() => {
                    let _ = line_tx.send(delta(chunk.stream.as_str(), &chunk.data)).await;
                }
                result = &mut exec => break result,
            }
        };
        while let Ok(chunk) = chunk_rx.try_recv() {
            let _ = line_tx
                .send(delta(chunk.stream.as_str(), &chunk.data))
                .await;
        }
        let last = match result {
            Ok(o) if o.spawn_error.is_some() => {
                json!({"type": "error", "message": o.spawn_error})
            }
            Ok(o) => json!({
                "type": "done",
                "exitCode": if o.timed_out { -1 } else { o.exit_code.unwrap_or(-1) },
                "timedOut": o.timed_out,
                "signal": o.signal.map(signal_name),
                "stdoutTruncated": o.stdout_truncated,
                "stderrTruncated": o.stderr_truncated,
                "truncated": o.stdout_truncated || o.stderr_truncated,
                "durationMs": o.duration.as_millis() as u64,
                "cpuTimeMs": o.cpu_time.map(|t| t.as_millis() as u64),
                "memoryPeakBytes": o.memory_peak,
            }),
            Err(e) => json!({"type": "error", "message": e.to_string()}),
        };
        let _ = line_tx.send(line(&last)).await;
    });
    let guard = AbortOnDrop(task);
    let stream = futures_util::stream::unfold((line_rx, guard), |(mut rx, guard)| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(b), (rx, guard)))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn busy() -> ApiError {
    let mut e = ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        ExecuteError::Busy.to_string(),
    );
    e.retry_after = Some(1);
    e
}

fn delta(stream: &str, data: &str) -> Bytes {
    line(&json!({"type": "delta", "stream": stream, "data": data}))
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// Aborts the command's task (killing its processes) when the response is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
