//! What the simulator's HTTP answers share: JSON bodies with Nango's headers, Nango's error
//! shape, and the injected connection reset.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
#[error("connection reset by the simulator")]
pub(super) struct InjectedReset;

pub(super) fn json_response(status: u16, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .header("x-ratelimit-limit", "200")
        .header("x-ratelimit-remaining", "199")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

pub(super) fn error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}
