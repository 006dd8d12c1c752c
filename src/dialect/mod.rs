//! Dialects: each turns the one [`State`](crate::state::State) into the status, content type and
//! body that one family of clients expects. Pure: no sockets, no clock reads (time comes in), no
//! state of their own. The route table that picks a dialect lives in `routes.rs`.

pub mod dapr;
pub mod dynamo;
pub mod frontend;
pub mod k8s;
pub mod kserve;
pub mod metrics;

use crate::json::Object;

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

/// Writes one JSON object into `body`: `fill` adds its members.
pub fn write_json(body: &mut Vec<u8>, fill: impl FnOnce(Object<'_>) -> Object<'_>) {
    let mut out = String::with_capacity(128);
    fill(Object::new(&mut out)).end();
    body.extend_from_slice(out.as_bytes());
}
