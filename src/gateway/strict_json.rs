//! The strict JSON the gateway accepts as a request body: one pass of `serde_json` with a
//! visitor that builds the [`Value`] and refuses, on the way, everything on which JSON
//! parsers are known to disagree (the I-JSON profile of RFC 7493, plus a depth cap). A body
//! that passes means the same thing to every conforming parser — serde_json here,
//! `JSON.parse` in a Node upstream, `json`/pydantic in a Python one — so the gateway's
//! decision is a decision about exactly what the upstream will see.
//!
//! Refused: a byte-order mark; invalid UTF-8 anywhere (also inside strings); lone
//! surrogate escapes (`"\ud800"`, which lenient parsers turn into U+FFFD or keep);
//! duplicate object keys at any depth, compared after unescaping (`"name"` and
//! `"n\u0061me"` are the same key); nesting deeper than [`MAX_DEPTH`]; numbers outside
//! what every parser represents alike (see [`Violation::Number`]); anything after the
//! value but whitespace. serde_json itself refuses bad UTF-8, lone surrogates, numbers
//! beyond the f64 range (`1e400`) and trailing data; the visitor adds the rest without a
//! second parse. Only a body holding a number of magnitude above 2^53 is scanned once
//! more, byte by byte, to tell an integer literal (refused) from a float (accepted),
//! which serde_json does not report.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Deepest nesting of objects and arrays accepted (the top-level object is depth 1). MCP
/// messages need 3 or 4 levels plus the tool's arguments; serde_json's own limit is 128.
pub const MAX_DEPTH: usize = 64;

/// Largest integer magnitude every parser holds exactly: 2^53 - 1 (I-JSON). JavaScript
/// rounds integers beyond it, Python keeps them exact, so the two would see different
/// ids and arguments.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a body is not strict JSON. The message never quotes the body beyond a key name
/// (cut to 64 characters).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("the body starts with a byte-order mark")]
    ByteOrderMark,
    /// A syntax, encoding or range error found by serde_json (its message, with line and
    /// column): invalid UTF-8, a lone surrogate, a number beyond f64, trailing data, ….
    #[error("{0}")]
    Syntax(String),
    #[error("duplicate object key {0:?}")]
    DuplicateKey(String),
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// An integer literal of magnitude 2^53 or more. (Floats of any finite magnitude are
    /// accepted: every parser rounds them to the same double.)
    #[error("integer {0} is outside the interoperable range (magnitude up to 2^53-1)")]
    Number(String),
}

/// Parses `body` strictly; see the module documentation for what is refused.
pub fn parse(body: &[u8]) -> Result<Value, Violation> {
    if body.starts_with(b"\xEF\xBB\xBF") {
        return Err(Violation::ByteOrderMark);
    }
    let seen = Seen::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Strict {
        depth: 1,
        seen: &seen,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    let value = match (parsed, seen.violation.into_inner()) {
        (_, Some(violation)) => return Err(violation),
        (Ok(v), None) => v,
        (Err(e), None) => return Err(Violation::Syntax(e.to_string())),
    };
    if seen.large_float.get()
        && let Some(literal) = unsafe_integer_literal(body)
    {
        return Err(Violation::Number(literal));
    }
    Ok(value)
}

/// Whether a `Content-Type` value lets the body be read as UTF-8: no `charset`
/// parameter, or only `utf-8`. An upstream that honours another declared charset (UTF-7,
/// UTF-16, Latin-1) would read other characters than the gateway did.
pub fn utf8_content_type(value: &str) -> bool {
    value.split(';').skip(1).all(|param| {
        let Some((name, charset)) = param.split_once('=') else {
            return true;
        };
        let charset = charset.trim().trim_matches('"');
        !name.trim().eq_ignore_ascii_case("charset")
            || charset.eq_ignore_ascii_case("utf-8")
            || charset.eq_ignore_ascii_case("utf8")
    })
}

/// What the visitor noticed (serde's error type carries only text).
#[derive(Default)]
struct Seen {
    /// The violation that aborted the parse.
    violation: Cell<Option<Violation>>,
    /// A float of magnitude above 2^53: maybe an integer literal beyond u64.
    large_float: Cell<bool>,
}

/// One value at `depth`.
#[derive(Clone, Copy)]
struct Strict<'a> {
    depth: usize,
    seen: &'a Seen,
}

impl Strict<'_> {
    fn refuse<E: de::Error>(&self, violation: Violation) -> E {
        let msg = violation.to_string();
        self.seen.violation.set(Some(violation));
        E::custom(msg)
    }

    fn nested(&self) -> Self {
        Strict {
            depth: self.depth + 1,
            seen: self.seen,
        }
    }

    fn check_depth<E: de::Error>(&self) -> Result<(), E> {
        if self.depth > MAX_DEPTH {
            return Err(self.refuse(Violation::TooDeep));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        if n > MAX_SAFE_INTEGER {
            return Err(self.refuse(Violation::Number(n.to_string())));
        }
        Ok(Value::Number(n.into()))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        if n.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(self.refuse(Violation::Number(n.to_string())));
        }
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        // serde_json calls this for integer literals beyond i64/u64 too; [`parse`] tells
        // them apart afterwards.
        if f.abs() > MAX_SAFE_INTEGER as f64 {
            self.seen.large_float.set(true);
        }
        match Number::from_f64(f) {
            Some(n) => Ok(Value::Number(n)),
            None => Err(self.refuse(Violation::Number(f.to_string()))),
        }
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.check_depth()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(self.nested())? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.check_depth()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match out.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(self.nested())?);
                }
                serde_json::map::Entry::Occupied(slot) => {
                    let key: String = slot.key().chars().take(64).collect();
                    return Err(self.refuse(Violation::DuplicateKey(key)));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// The first integer literal (no fraction, no exponent) of magnitude above 2^53-1 in a
/// body that serde_json accepted, cut to 64 characters. Skips strings; one pass.
fn unsafe_integer_literal(body: &[u8]) -> Option<String> {
    let mut i = 0;
    let mut in_string = false;
    while i < body.len() {
        let b = body[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
        } else if b == b'-' || b.is_ascii_digit() {
            let start = i;
            let digits = i + usize::from(b == b'-');
            i = digits;
            while i < body.len() && body[i].is_ascii_digit() {
                i += 1;
            }
            let integer = !matches!(body.get(i), Some(b'.' | b'e' | b'E'));
            let text = std::str::from_utf8(&body[digits..i]).unwrap_or_default();
            let safe = text.len() <= 16 && text.parse::<u64>().is_ok_and(|n| n <= MAX_SAFE_INTEGER);
            if integer && !safe {
                let literal = String::from_utf8_lossy(&body[start..i]);
                return Some(literal.chars().take(64).collect());
            }
            while i < body.len()
                && matches!(body[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
            {
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(body: &[u8]) -> Violation {
        parse(body).expect_err(&String::from_utf8_lossy(body))
    }

    fn nested(depth: usize) -> String {
        // `depth` levels in all: the object, then arrays.
        format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    }

    #[test]
    fn accepts_ordinary_messages_as_serde_json_does() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hé \u00e9 \ud83d\ude00","n":-0,"x":0.1,"y":-3.5e-7,"z":[true,false,null]}}}"#,
            " \t\r\n{\"a\":{}} \n",
            r#"{"big":9007199254740991,"neg":-9007199254740991,"f":1.5e10}"#,
        ] {
            let strict = parse(body.as_bytes()).unwrap();
            let lenient: Value = serde_json::from_str(body).unwrap();
            assert_eq!(strict, lenient);
            // Key order is kept, so re-serialising changes nothing but whitespace.
            assert_eq!(strict.to_string(), lenient.to_string());
        }
    }

    #[test]
    fn refuses_a_byte_order_mark() {
        assert_eq!(refused(b"\xEF\xBB\xBF{}"), Violation::ByteOrderMark);
    }

    #[test]
    fn refuses_invalid_utf8_and_lone_surrogates() {
        for body in [
            &b"{\"a\":\"\xff\"}"[..],
            b"{\"a\":\"\xed\xa0\x80\"}", // a surrogate encoded as UTF-8 (CESU)
            b"{\"\xc3\":1}",
            b"{\"a\":1}\xff",
            br#"{"a":"\ud800"}"#,
            br#"{"a":"\udc00x"}"#,
            br#"{"a":"\ud800\u0041"}"#,
        ] {
            assert!(matches!(refused(body), Violation::Syntax(_)), "{body:?}");
        }
        // A proper surrogate pair is fine.
        assert_eq!(
            parse(br#"{"a":"\ud83d\ude00"}"#).unwrap(),
            json!({"a": "😀"})
        );
    }

    #[test]
    fn refuses_numbers_parsers_disagree_on() {
        for n in [
            "9007199254740992",
            "-9007199254740992",
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "-123456789012345678901234567890",
        ] {
            let body = format!("{{\"a\":{n}}}");
            assert!(
                matches!(refused(body.as_bytes()), Violation::Number(_)),
                "{n}"
            );
        }
        for n in ["1e400", "-1e400", "1E999"] {
            let body = format!("{{\"a\":{n}}}");
            assert!(
                matches!(refused(body.as_bytes()), Violation::Syntax(_)),
                "{n}"
            );
        }
        // Floats of any finite magnitude, zeros and underflow mean the same everywhere;
        // a long integer inside a string is just text.
        assert!(
            parse(
                br#"{"a":[0,-0,1.5e300,1e300,-6.02e23,1e-400,2.5,-1e-7,100.0,9007199254740993.0]}"#
            )
            .is_ok()
        );
        assert!(parse(br#"{"s":"123456789012345678901234567890 \" 99999999999999999999","t":"\\","f":1e300}"#).is_ok());
        // The scan runs only when a large float appears, and then finds the literal.
        assert_eq!(
            refused(br#"{"s":"\"","f":1e300,"n":-99999999999999999999}"#),
            Violation::Number("-99999999999999999999".into())
        );
    }

    #[test]
    fn refuses_duplicate_keys_at_any_depth_after_unescaping() {
        for body in [
            r#"{"method":"ping","method":"tools/call"}"#,
            r#"{"params":{"name":"echo","name":"get-sum"}}"#,
            r#"{"a":[{"x":{"k":1,"k":1}}]}"#,
            r#"{"name":"a","n\u0061me":"b"}"#,
        ] {
            assert!(
                matches!(refused(body.as_bytes()), Violation::DuplicateKey(_)),
                "{body}"
            );
        }
        // Keys that differ only in case are different keys for every parser.
        assert!(parse(br#"{"name":"a","Name":"b"}"#).is_ok());
    }

    #[test]
    fn caps_nesting_depth() {
        assert!(parse(nested(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            refused(nested(MAX_DEPTH + 1).as_bytes()),
            Violation::TooDeep
        );
        // Beyond serde_json's own limit the cap answers first, with the same reason.
        assert_eq!(refused(nested(500).as_bytes()), Violation::TooDeep);
        let objects = format!("{}1{}", "{\"a\":".repeat(65), "}".repeat(65));
        assert_eq!(refused(objects.as_bytes()), Violation::TooDeep);
    }

    #[test]
    fn refuses_trailing_data_and_broken_syntax() {
        for body in [
            &b"{} x"[..],
            b"{}{}",
            b"{\"a\":1,}",
            b"",
            b"   ",
            b"{not json",
            b"{\"a\":01}",
            b"{\"a\":\"tab\there\"}",
            b"{'a':1}",
            b"{\"a\":NaN}",
        ] {
            assert!(matches!(refused(body), Violation::Syntax(_)), "{body:?}");
        }
    }

    #[test]
    fn only_utf8_may_be_declared() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
            "application/json; charset=\"utf8\"",
            "application/json; foo=bar",
        ] {
            assert!(utf8_content_type(ok), "{ok}");
        }
        for bad in [
            "application/json; charset=utf-7",
            "application/json; charset=UTF-16LE",
            "application/json; Charset=latin1",
            "application/json; charset=utf-8; charset=utf-7",
            "application/json; charset=",
        ] {
            assert!(!utf8_content_type(bad), "{bad}");
        }
    }

    #[test]
    fn messages_do_not_quote_the_body() {
        let body = format!(r#"{{"{k}":1,"{k}":2}}"#, k = "s".repeat(500));
        let Violation::DuplicateKey(k) = refused(body.as_bytes()) else {
            panic!("not a duplicate key");
        };
        assert_eq!(k.len(), 64);
        let secret = r#"{"token":"hunter2-secret" trailing}"#;
        assert!(!refused(secret.as_bytes()).to_string().contains("hunter2"));
    }
}
