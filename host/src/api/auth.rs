//! Bearer-token authentication: when a token is configured, every request except
//! GET /health must carry `Authorization: Bearer <token>`, compared in constant time.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{ApiError, SharedState};

pub async fn require_token(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let Some(token) = state
        .settings
        .auth_token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return next.run(req).await;
    };
    if req.method() == Method::GET && req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let message = match given {
        Some(given) if bool::from(given.as_bytes().ct_eq(token.as_bytes())) => {
            return next.run(req).await
        }
        Some(_) => "invalid bearer token",
        None => "missing `Authorization: Bearer <token>` header",
    };
    // Read (and drop) the body first, within the body limit: answering before the
    // client has sent it would make the close a TCP reset that can eat the 401.
    let _ = axum::body::to_bytes(req.into_body(), state.settings.body_limit).await;
    ApiError::new(StatusCode::UNAUTHORIZED, message).into_response()
}
