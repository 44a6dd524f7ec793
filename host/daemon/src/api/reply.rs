//! Answers in Patroni's forms, and request bodies read Patroni's way.

use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A plain-text answer, as Patroni's `write_response` sends its messages
/// (patronictl prints them as they are).
pub fn text(code: u16, body: impl Into<String>) -> Response {
    let mut r = (status(code), body.into()).into_response();
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r
}

/// A JSON answer.
pub fn json(code: u16, body: Value) -> Response {
    (status(code), axum::Json(body)).into_response()
}

/// A request that cannot be served as sent: JSON naming what is wrong.
pub fn bad_request(code: u16, message: impl Into<String>) -> Response {
    json(code, serde_json::json!({"error": message.into()}))
}

/// An empty answer with just a status (Patroni's `send_error` for 502/503/409).
pub fn code_only(code: u16) -> Response {
    status(code).into_response()
}

/// Read a JSON object body as Patroni's `_read_json_content` does: 411
/// without Content-Length (unless the body is optional), 400 when it is not
/// a JSON object (or an empty one where a body is required).
pub fn read_json(headers: &HeaderMap, body: &[u8], optional: bool) -> Result<Map<String, Value>, Response> {
    if !headers.contains_key(CONTENT_LENGTH) && body.is_empty() {
        return if optional {
            Ok(Map::new())
        } else {
            Err(bad_request(411, "a JSON body (with Content-Length) is required"))
        };
    }
    if body.is_empty() && optional {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) if !m.is_empty() || optional => Ok(m),
        Ok(Value::Object(_)) => Err(bad_request(400, "the JSON body must not be empty")),
        Ok(other) => Err(bad_request(400, format!("the body must be a JSON object, not {}", kind(&other)))),
        Err(e) => Err(bad_request(400, format!("the body is not valid JSON: {e}"))),
    }
}

pub use palisade_model::json_kind as kind;

/// A string field, or 400 naming the field when it has another type.
pub fn opt_str(body: &Map<String, Value>, key: &str) -> Result<Option<String>, Response> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad_request(400, format!("'{key}' must be a string, not {}", kind(other)))),
    }
}
