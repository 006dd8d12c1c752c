//! Just enough JSON reading for `healthd status` and the etcd gateway's answers: one strict
//! RFC 8259 parser into a small tree, and a compact writer of that tree.
//!
//! Doing this with serde_json's deserializer cost about 34 KB of the static binary (issue 6); this
//! parser is a few hundred lines of straightforward code instead. The HTTP bodies are written
//! with [`Object`] and [`write_str`] (serde was dropped for size, issue 13); [`Json::write`]
//! re-emits a value read from etcd as found. A property test (`src/fuzz.rs`) holds this
//! parser to serde_json's verdict on arbitrary input and to its tree on arbitrary documents.
//!
//! Numbers are kept as their text (the caller decides what it accepts); objects keep their
//! members in order, and [`Json::get`] answers with the last member of a name, as serde_json's
//! maps do. Nesting deeper than [`MAX_DEPTH`] is refused, as serde_json refuses it.

use std::fmt;

/// How deeply arrays and objects may nest (serde_json's limit).
pub const MAX_DEPTH: usize = 127;

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number as written (already checked against the JSON grammar).
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The member `key` of an object (the last one, if repeated); `None` for other values.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// Appends the value as compact JSON (numbers as they were written).
    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_str(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A compact JSON object written member by member, keys in the order given: how the dialects
/// write their bodies (a property test holds the string escaping to serde_json's).
pub struct Object<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Object<'a> {
    pub fn new(out: &'a mut String) -> Object<'a> {
        out.push('{');
        Object { out, empty: true }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        write_str(key, self.out);
        self.out.push(':');
        self.out
    }

    /// A string member.
    pub fn str(mut self, key: &str, value: &str) -> Object<'a> {
        let out = self.key(key);
        write_str(value, out);
        self
    }

    /// A member whose value is JSON text already (a number, `true`, `[]`, an object).
    pub fn raw(mut self, key: &str, value: &str) -> Object<'a> {
        self.key(key).push_str(value);
        self
    }

    pub fn end(self) {
        self.out.push('}');
    }
}

/// A JSON string literal, escaped as serde_json escapes it.
pub fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 15] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Why a document is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub what: &'static str,
    pub at: usize,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not JSON: {} at byte {}", self.what, self.at)
    }
}

/// Parses one JSON document (surrounding whitespace allowed, nothing else).
pub fn parse(bytes: &[u8]) -> Result<Json, Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error {
        what: "invalid UTF-8",
        at: e.valid_up_to(),
    })?;
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    let value = p.value(0)?;
    p.skip_ws();
    if p.i != p.s.len() {
        return p.fail("trailing characters");
    }
    Ok(value)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn fail<T>(&self, what: &'static str) -> Result<T, Error> {
        Err(Error { what, at: self.i })
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Consumes `b` after any whitespace, or fails with `what`.
    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), Error> {
        self.skip_ws();
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            self.fail(what)
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, Error> {
        self.skip_ws();
        match self.peek() {
            None => self.fail("unexpected end of input"),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.fail("expected a value"),
        }
    }

    fn literal(&mut self, word: &'static str, value: Json) -> Result<Json, Error> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(value)
        } else {
            self.fail("expected a value")
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, Error> {
        let members = self.sequence(depth, b'}', "expected ',' or '}'", |p| {
            p.skip_ws();
            if p.peek() != Some(b'"') {
                return p.fail("expected a member name");
            }
            let key = p.string()?;
            p.expect(b':', "expected ':'")?;
            Ok((key, p.value(depth)?))
        })?;
        Ok(Json::Object(members))
    }

    fn array(&mut self, depth: usize) -> Result<Json, Error> {
        let items = self.sequence(depth, b']', "expected ',' or ']'", |p| p.value(depth))?;
        Ok(Json::Array(items))
    }

    /// The comma-separated items of an array or object, from its opening bracket through `close`.
    fn sequence<T>(
        &mut self,
        depth: usize,
        close: u8,
        expected: &'static str,
        mut item: impl FnMut(&mut Self) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        if depth > MAX_DEPTH {
            return self.fail("nested too deeply");
        }
        self.i += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(items);
        }
        loop {
            items.push(item(self)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {
                    self.i += 1;
                    return Ok(items);
                }
                _ => return self.fail(expected),
            }
        }
    }

    fn number(&mut self) -> Result<Json, Error> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.fail("expected a digit"),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.fail("expected a digit after '.'");
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.fail("expected a digit in the exponent");
            }
            self.digits();
        }
        Ok(Json::Number(self.text[start..self.i].to_string()))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    /// A string, starting at its opening quote.
    fn string(&mut self) -> Result<String, Error> {
        self.i += 1;
        let mut out = String::new();
        loop {
            // Copy the plain run up to the next quote, backslash or control character.
            let run = self.s[self.i..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .map_or(self.s.len(), |n| self.i + n);
            out.push_str(&self.text[self.i..run]);
            self.i = run;
            match self.peek() {
                None => return self.fail("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.i += 1;
                            out.push(self.unicode_escape()?);
                            continue;
                        }
                        _ => return self.fail("invalid escape"),
                    };
                    self.i += 1;
                    out.push(c);
                }
                Some(_) => return self.fail("control character in string"),
            }
        }
    }

    /// The character of a `\u` escape (just after the `u`), joining a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, Error> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.s[self.i..].starts_with(b"\\u") {
                    return self.fail("lone surrogate in \\u escape");
                }
                self.i += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return self.fail("lone surrogate in \\u escape");
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return self.fail("lone surrogate in \\u escape"),
            c => c,
        };
        match char::from_u32(code) {
            Some(c) => Ok(c),
            None => self.fail("invalid \\u escape"),
        }
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let mut n = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return self.fail("expected four hex digits after \\u"),
            };
            n = n * 16 + u32::from(d);
            self.i += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Json {
        Json::String(v.to_string())
    }

    #[test]
    fn parses_a_dynamo_health_body() {
        let body =
            br#"{"status":"ready","uptime":{"secs":3,"nanos":5},"endpoints":{"generate":"ready"}}"#;
        let v = parse(body).unwrap();
        assert_eq!(v.get("status"), Some(&s("ready")));
        assert_eq!(
            v.get("uptime").and_then(|u| u.get("secs")),
            Some(&Json::Number("3".into()))
        );
        assert_eq!(
            v.get("endpoints"),
            Some(&Json::Object(vec![("generate".into(), s("ready"))]))
        );
    }

    #[test]
    fn values_escapes_and_whitespace() {
        let v = parse(b" [null, true ,false,-0.5e+3, 12, \"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\", {}, []]\n").unwrap();
        assert_eq!(
            v,
            Json::Array(vec![
                Json::Null,
                Json::Bool(true),
                Json::Bool(false),
                Json::Number("-0.5e+3".into()),
                Json::Number("12".into()),
                s("a\"\\/\u{8}\u{c}\n\r\té😀"),
                Json::Object(vec![]),
                Json::Array(vec![]),
            ])
        );
        assert_eq!(
            parse(br#"{"a":1,"a":2}"#).unwrap().get("a"),
            Some(&Json::Number("2".into()))
        );
        assert_eq!(parse(b"\"\xc3\xa9\"").unwrap(), s("é"));
    }

    #[test]
    fn refuses_what_is_not_json() {
        let cases: &[(&[u8], &str, usize)] = &[
            (b"", "unexpected end of input", 0),
            (b"{", "expected a member name", 1),
            (b"{\"a\" 1}", "expected ':'", 5),
            (b"{\"a\":1,}", "expected a member name", 7),
            (b"[1 2]", "expected ',' or ']'", 3),
            (b"01", "trailing characters", 1),
            (b"1.", "expected a digit after '.'", 2),
            (b"1e", "expected a digit in the exponent", 2),
            (b"-", "expected a digit", 1),
            (b"+1", "expected a value", 0),
            (b"tru", "expected a value", 0),
            (b"\"abc", "unterminated string", 4),
            (b"\"a\nb\"", "control character in string", 2),
            (b"\"\\x\"", "invalid escape", 2),
            (b"\"\\u12\"", "expected four hex digits after \\u", 5),
            (b"\"\\ud800\"", "lone surrogate in \\u escape", 7),
            (b"\"\\udc00\"", "lone surrogate in \\u escape", 7),
            (b"\"\xff\"", "invalid UTF-8", 1),
            (b"{} {}", "trailing characters", 3),
        ];
        for (input, what, at) in cases {
            let want = Error { what, at: *at };
            assert_eq!(
                parse(input),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            parse(deep.as_bytes()).unwrap_err().what,
            "nested too deeply"
        );
        // Far deeper input fails the same way, without exhausting the stack.
        let very = "[{\"a\":".repeat(100_000);
        assert_eq!(
            parse(very.as_bytes()).unwrap_err().what,
            "nested too deeply"
        );
    }
}
