//! The JSON body extractor: like axum's `Json`, but every rejection (wrong content
//! type, invalid JSON, wrong field types, body too large) answers with the error
//! envelope and a message a person can act on.
//!
//! A body must be sent as JSON: a type that is not JSON (`text/plain`, the form type
//! `curl -d` sends) is refused with 400, as the API asks. A body sent with no
//! `Content-Type` at all is read as JSON, as the KubeCodeRun runner (FastAPI) reads it
//! (its clients' `requests.post(url, data=json.dumps(...))` sends none), except from a
//! browser (a request with an `Origin` header): a page may send a body of no type to
//! another origin without asking first, and on a listener without a token that would
//! be enough to run code.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(mut req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers_mut();
        // Read as JSON although it was not said to be: a body with no type.
        let untyped =
            !headers.contains_key(header::CONTENT_TYPE) && !headers.contains_key(header::ORIGIN);
        if untyped {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(explain(rejection, untyped)),
        }
    }
}

/// `untyped`: the body had no type and was read as JSON anyway.
fn explain(rejection: JsonRejection, untyped: bool) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::bad_request("expected a JSON body: send `Content-Type: application/json`")
        }
        JsonRejection::JsonSyntaxError(e) => {
            let sent = if untyped {
                " (sent without a Content-Type)"
            } else {
                ""
            };
            ApiError::bad_request(format!("invalid JSON{sent}: {}", inner(&e.body_text())))
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::bad_request(format!("invalid request: {}", inner(&e.body_text())))
        }
        JsonRejection::BytesRejection(e) => {
            if let Some(answer) = super::idle_body::stalled_answer(&e) {
                return answer;
            }
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, "request body too large (see SIDECAR_BODY_LIMIT)")
            } else {
                ApiError::new(
                    status,
                    format!("cannot read the request body: {}", e.body_text()),
                )
            }
        }
        other => ApiError::new(other.status(), other.body_text()),
    }
}

/// axum's messages start with a generic prefix; keep the part that says what is wrong.
fn inner(text: &str) -> String {
    in_words(text.split_once(": ").map_or(text, |(_, rest)| rest))
}

/// A deserializer's message with Rust's type names said in words: `expected f64` is
/// `expected a number`.
pub(super) fn in_words(message: &str) -> String {
    let mut message = message.to_string();
    for (rust, words) in [
        ("f64", "a number"),
        ("f32", "a number"),
        ("u64", "a whole number >= 0"),
        ("u32", "a whole number >= 0"),
        ("usize", "a whole number >= 0"),
        ("i64", "a whole number"),
        ("i32", "a whole number"),
    ] {
        let expected = format!("expected {rust}");
        if message.ends_with(&expected) {
            message.truncate(message.len() - rust.len());
            message.push_str(words);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::{in_words, inner};

    #[test]
    fn rust_type_names_are_said_in_words() {
        assert_eq!(
            inner("Failed to deserialize the JSON body into the target type: `timeout`: invalid type: string \"5\", expected f64"),
            "`timeout`: invalid type: string \"5\", expected a number"
        );
        assert_eq!(
            inner("x: `limit`: invalid value: integer `-1`, expected u64"),
            "`limit`: invalid value: integer `-1`, expected a whole number >= 0"
        );
        assert_eq!(
            inner("x: `path`: expected a string"),
            "`path`: expected a string"
        );
        assert_eq!(
            in_words("invalid type: boolean `true`, expected i64"),
            "invalid type: boolean `true`, expected a whole number"
        );
    }
}
