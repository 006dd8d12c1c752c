//! Dialects: each turns the one [`State`](crate::state::State) into the status, content type and
//! body that one family of clients expects. Pure: no sockets, no clock reads (time comes in), no
//! state of their own. The route table that picks a dialect lives in `routes.rs`.

pub mod dapr;
pub mod dynamo;
pub mod frontend;
pub mod k8s;
pub mod kserve;
pub mod metrics;

/// What a dialect decided: the status code, the content type and (written into a caller's buffer)
/// the body. `allow` asks for an `Allow: GET, HEAD` header (405 answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub content_type: &'static str,
    pub allow: bool,
}

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Head {
    pub fn new(status: u16, content_type: &'static str) -> Head {
        Head {
            status,
            content_type,
            allow: false,
        }
    }
}

/// Writes `value` as compact JSON into `body`. Serialising into a `Vec` cannot fail for the
/// plain structs and maps the dialects build, so an error is only ever an empty body.
pub fn write_json<T: serde::Serialize + ?Sized>(body: &mut Vec<u8>, value: &T) {
    if serde_json::to_writer(&mut *body, value).is_err() {
        body.clear();
    }
}
