//! Request heads in, responses out, over plain byte slices: no sockets, so every rule here is
//! tested with byte strings. Owns the limits on a head (size, header count), keep-alive and
//! `Connection: close`, HTTP/1.0 versus 1.1, pipelining (several requests in one buffer, answered
//! in order), declared bodies (never read: answer and close), HEAD without a body, the error
//! answers 400, 431 and 505, and `cache-control: no-store` on every response (a health answer must
//! never be served from a cache: a stored 200 would hide a 503).

use std::io::Write;

use crate::dialect::{Head, TEXT};

/// The largest request head accepted (request line plus headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// The most headers in one request.
pub const MAX_HEADERS: usize = 64;

/// One parsed request, as the handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path without the query string.
    pub path: &'a str,
    /// The query string without `?` (empty when there is none).
    pub query: &'a str,
}

/// What answers requests: writes the body into `body` (empty on entry) and returns the head.
pub trait Handler {
    fn handle(&mut self, req: &Request<'_>, body: &mut Vec<u8>) -> Head;
}

/// What [`answer`] did with a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Bytes of complete requests consumed (answered) from the front of the buffer.
    pub consumed: usize,
    /// Requests answered.
    pub answered: usize,
    /// The connection must close once `out` is written; the rest of the input is discarded.
    pub close: bool,
    /// The peer may still be sending (a declared body): close gently so the answer arrives.
    pub linger: bool,
}

/// Answers every complete request at the front of `data`, appending responses to `out`, until the
/// data runs out, a request asks to close, or `out` holds more than `max_out` bytes (the caller
/// resumes once the peer has read them: a client that never reads stops being answered).
pub fn answer<H: Handler>(
    data: &[u8],
    handler: &mut H,
    date: &[u8],
    body: &mut Vec<u8>,
    out: &mut Vec<u8>,
    max_out: usize,
) -> Progress {
    let mut p = Progress::default();
    while p.consumed < data.len() && out.len() <= max_out {
        let rest = &data[p.consumed..];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let n = match req.parse(rest) {
            Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
            Ok(httparse::Status::Complete(_)) => {
                return fail(p, out, date, 431, "Request header fields too large");
            }
            Ok(httparse::Status::Partial) if rest.len() > MAX_HEAD => {
                return fail(p, out, date, 431, "Request header fields too large");
            }
            Ok(httparse::Status::Partial) => return p,
            Err(httparse::Error::TooManyHeaders) => {
                return fail(p, out, date, 431, "Too many headers");
            }
            Err(httparse::Error::Version) => {
                return fail(p, out, date, 505, "HTTP version not supported");
            }
            Err(_) => return fail(p, out, date, 400, "Bad request"),
        };
        let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version)
        else {
            return fail(p, out, date, 400, "Bad request");
        };
        let mut keep_alive = version == 1;
        let mut has_body = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|b| *b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                        keep_alive = true;
                    }
                }
            } else if h.name.eq_ignore_ascii_case("content-length") {
                match std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                {
                    Some(0) => {}
                    Some(_) => has_body = true,
                    None => return fail(p, out, date, 400, "Bad Content-Length"),
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                has_body = true;
            }
        }
        // A probe never needs a request body: answer, then close instead of reading it.
        if has_body {
            keep_alive = false;
        }
        let (path, query) = split_target(target);
        body.clear();
        let head = handler.handle(
            &Request {
                method,
                path,
                query,
            },
            body,
        );
        let send_body = method != "HEAD";
        write_response(out, date, head, body, send_body, keep_alive, version == 0);
        p.consumed += n;
        p.answered += 1;
        if !keep_alive {
            p.close = true;
            p.linger = has_body || p.consumed < data.len();
            return p;
        }
    }
    p
}

/// Splits a request target into path and query; an absolute-form target (`http://host/path`)
/// is reduced to its path.
fn split_target(target: &str) -> (&str, &str) {
    let target = match target.split_once("://") {
        Some((scheme, rest)) if !scheme.contains('/') => rest.find('/').map_or("/", |i| &rest[i..]),
        _ => target,
    };
    match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    }
}

/// Appends an error answer and marks the connection for closing.
fn fail(mut p: Progress, out: &mut Vec<u8>, date: &[u8], status: u16, text: &str) -> Progress {
    write_response(
        out,
        date,
        Head::new(status, TEXT),
        text.as_bytes(),
        true,
        false,
        false,
    );
    p.close = true;
    p.linger = true;
    p
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Appends one response: status line, `content-type`, `content-length` (not on 204), `date`,
/// `cache-control: no-store` (always: every answer describes this instant, and no cache between a
/// prober and healthd may store or reuse it), `allow` on 405, `connection` when it differs from the version's default, then the body unless
/// this is a HEAD answer.
pub fn write_response(
    out: &mut Vec<u8>,
    date: &[u8],
    head: Head,
    body: &[u8],
    send_body: bool,
    keep_alive: bool,
    http10: bool,
) {
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", head.status, reason(head.status));
    if head.status != 204 {
        let _ = write!(
            out,
            "content-type: {}\r\ncontent-length: {}\r\n",
            head.content_type,
            body.len()
        );
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\ncache-control: no-store\r\n");
    if head.allow {
        out.extend_from_slice(b"allow: GET, HEAD\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if send_body && head.status != 204 {
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dialect::JSON;

    /// Answers `/x` with 200 `hi`, `/nc` with 204, anything else with 404; records what it saw.
    pub(crate) struct Echo(pub Vec<String>);

    impl Handler for Echo {
        fn handle(&mut self, req: &Request<'_>, body: &mut Vec<u8>) -> Head {
            self.0
                .push(format!("{} {} {}", req.method, req.path, req.query));
            match req.path {
                "/x" => {
                    body.extend_from_slice(b"hi");
                    Head::new(200, JSON)
                }
                "/nc" => Head::new(204, JSON),
                _ => Head::new(404, TEXT),
            }
        }
    }

    pub(crate) const DATE: &[u8] = b"Thu, 01 Jan 1970 00:00:00 GMT";

    fn check(input: &[u8]) -> (Progress, String, Vec<String>) {
        let mut h = Echo(Vec::new());
        let mut out = Vec::new();
        let p = answer(input, &mut h, DATE, &mut Vec::new(), &mut out, 64 * 1024);
        (p, String::from_utf8_lossy(&out).into_owned(), h.0)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\ncache-control: no-store\r\n\r\nhi";

    #[test]
    fn keep_alive_and_close() {
        let (p, out, seen) = check(b"GET /x?a=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((p.consumed, p.answered, p.close), (32, 1, false));
        assert_eq!(out, OK);
        assert_eq!(seen, ["GET /x a=1"]);

        let (p, out, _) = check(b"GET /x HTTP/1.1\r\nConnection: Close\r\n\r\n");
        assert!(p.close && !p.linger);
        assert!(out.contains("\r\nconnection: close\r\n\r\nhi"), "{out}");

        let (p, out, _) = check(b"GET /x HTTP/1.0\r\n\r\n");
        assert!(p.close);
        assert!(out.contains("connection: close"), "{out}");

        let (p, out, _) = check(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(!p.close);
        assert!(out.contains("connection: keep-alive\r\n"), "{out}");
    }

    #[test]
    fn pipelining_in_order_and_partial_tail() {
        let (p, out, seen) = check(
            b"GET /x HTTP/1.1\r\n\r\nHEAD /x HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nGET /x HT",
        );
        assert_eq!((p.answered, p.close), (3, false));
        assert_eq!(p.consumed, 19 + 20 + 22);
        assert_eq!(seen, ["GET /x ", "HEAD /x ", "GET /nope "]);
        let head_answer = OK.strip_suffix("hi").unwrap();
        assert!(
            out.starts_with(&format!("{OK}{head_answer}HTTP/1.1 404 Not Found\r\n")),
            "{out}"
        );
    }

    #[test]
    fn output_cap_stops_answering() {
        let mut h = Echo(Vec::new());
        let mut out = Vec::new();
        let req = b"GET /x HTTP/1.1\r\n\r\n".repeat(100);
        let p = answer(&req, &mut h, DATE, &mut Vec::new(), &mut out, 500);
        assert!(p.answered < 100 && p.answered > 1, "{p:?}");
        assert_eq!(p.consumed, p.answered * 19);
    }

    #[test]
    fn bodies_are_never_read() {
        let (p, out, _) = check(b"POST /x HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\n");
        assert!(p.close && p.linger, "{p:?}");
        assert!(out.contains("connection: close"));
        let (p, _, _) = check(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
        assert!(p.close);
        let (p, _, _) = check(b"POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(!p.close);
        let (p, out, _) = check(b"POST /x HTTP/1.1\r\nContent-Length: x\r\n\r\n");
        assert!(p.close && out.starts_with("HTTP/1.1 400 "));
    }

    #[test]
    fn errors_and_limits() {
        let cases: &[(&[u8], &str)] = &[
            (b"GET / HTTP/2.0\r\n\r\n", "HTTP/1.1 505 "),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/1.1 505 "),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                "HTTP/1.1 400 ",
            ),
            (b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n", "HTTP/1.1 400 "),
        ];
        for (input, want) in cases {
            let (p, out, _) = check(input);
            assert!(p.close && out.starts_with(want), "{input:?}: {out}");
            assert!(out.contains("\r\ncache-control: no-store\r\n"), "{out}");
        }
        let long = [
            b"GET /x HTTP/1.1\r\nX: ".as_slice(),
            &[b'a'; MAX_HEAD],
            b"\r\n\r\n",
        ]
        .concat();
        let (p, out, _) = check(&long);
        assert!(p.close && out.starts_with("HTTP/1.1 431 "), "{out}");
        let unfinished = [b"GET /x HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        let (p, out, _) = check(&unfinished);
        assert!(p.close && out.starts_with("HTTP/1.1 431 "), "{out}");
        let many = [
            b"GET /x HTTP/1.1\r\n".as_slice(),
            &b"A: b\r\n".repeat(MAX_HEADERS + 1),
            b"\r\n",
        ]
        .concat();
        let (p, out, _) = check(&many);
        assert!(p.close && out.starts_with("HTTP/1.1 431 "), "{out}");
        assert_eq!(
            out,
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 16\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\ncache-control: no-store\r\nconnection: close\r\n\r\nToo many headers"
        );
    }

    #[test]
    fn bare_lf_and_absolute_form() {
        let (p, out, _) = check(b"GET /x HTTP/1.1\nHost: h\n\n");
        assert_eq!(p.answered, 1);
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        let (_, _, seen) = check(b"GET http://h:1/x?q HTTP/1.1\r\n\r\n");
        assert_eq!(seen, ["GET /x q"]);
    }

    #[test]
    fn no_content_has_no_length() {
        let (_, out, _) = check(b"GET /nc HTTP/1.1\r\n\r\n");
        assert_eq!(
            out,
            "HTTP/1.1 204 No Content\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\ncache-control: no-store\r\n\r\n"
        );
    }
}
