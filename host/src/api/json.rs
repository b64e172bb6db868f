//! The JSON body extractor: like axum's `Json`, but every rejection (wrong content
//! type, invalid JSON, wrong field types, body too large) answers with the error
//! envelope and a message a person can act on.
//!
//! The body is read as JSON whatever its `Content-Type`, as both peers read it: the
//! coding sidecar parsed every body, and the KubeCodeRun runner (FastAPI) parses one
//! that has no type, which its clients' `requests.post(url, data=json.dumps(...))`
//! sends; `curl -d` sends form-urlencoded. Not from a browser (a request with an
//! `Origin` header): a page may send a body of no type, `text/plain` or a form to
//! another origin without asking first, and on a listener without a token that would
//! be enough to run code. From a browser only a JSON type is taken, which a page cannot
//! send across origins unasked.

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
        // The type the body was sent as, when it is not JSON and is read as JSON anyway.
        let mut sent_as = None;
        if !headers.contains_key(header::ORIGIN) {
            let given = headers.get(header::CONTENT_TYPE);
            if !given.is_some_and(is_json_type) {
                sent_as = Some(
                    given
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .unwrap_or_default(),
                );
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
        }
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(explain(rejection, sent_as.as_deref())),
        }
    }
}

/// `application/json`, or `application/<anything>+json`, with any parameters.
fn is_json_type(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// `sent_as`: the body's own type (empty when it had none) when it was read as JSON
/// although not sent as JSON.
fn explain(rejection: JsonRejection, sent_as: Option<&str>) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::bad_request("expected a JSON body: send `Content-Type: application/json`")
        }
        JsonRejection::JsonSyntaxError(e) => {
            let sent = match sent_as {
                Some("") => " (sent without a Content-Type)".to_string(),
                Some(t) => format!(" (sent as `{t}`)"),
                None => String::new(),
            };
            ApiError::bad_request(format!("invalid JSON{sent}: {}", inner(&e.body_text())))
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::bad_request(format!("invalid request: {}", inner(&e.body_text())))
        }
        JsonRejection::BytesRejection(e) => {
            if let Some(stalled) = super::idle_body::stalled(&e) {
                return ApiError::new(StatusCode::REQUEST_TIMEOUT, stalled.to_string());
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
    use super::{in_words, inner, is_json_type};
    use axum::http::HeaderValue;

    #[test]
    fn json_types_are_told_apart() {
        for t in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.api+json",
        ] {
            assert!(is_json_type(&HeaderValue::from_static(t)), "{t}");
        }
        for t in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "text/json+x",
            "",
        ] {
            assert!(!is_json_type(&HeaderValue::from_static(t)), "{t}");
        }
    }

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
