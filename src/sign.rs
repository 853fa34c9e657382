//! Request signing (docs/protocol.md, signing): canonical string, MD5, timestamp window.
//! Nonce bookkeeping lives in the store, since it must survive a restart.
//!
//! Numbers are signed exactly as written. serde_json's `arbitrary_precision`
//! keeps a parsed number's digits (`1.50`, a 20-digit integer), which is what
//! [`string_to_sign`] renders; an incoming request is checked with
//! [`verify_body`], which reads the body's own text, so even an exponent
//! (`1E+3`, which the parser would store as `1e+3`) is hashed as sent.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::domain::ids::MaskedPhone;
use crate::domain::LedgerError;

/// Which fields a partner signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignFields {
    /// Every top-level field but `sign` (the WeChat Pay v2 rule).
    #[default]
    All,
    /// Only the common parameters: `api_key`, `nonce`, `seq_id`, `timestamp`
    /// (and their coupon-query names `agent_no`, `req_id`).
    Common,
}

/// How one counterpart signs: which fields, and the name of the appended secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignRule {
    pub fields: SignFields,
    pub key_name: String,
}

impl Default for SignRule {
    fn default() -> Self {
        SignRule {
            fields: SignFields::All,
            key_name: "key".into(),
        }
    }
}

const COMMON_FIELDS: [&str; 6] = [
    "agent_no",
    "api_key",
    "nonce",
    "req_id",
    "seq_id",
    "timestamp",
];
const PERSONAL_FIELDS: [&str; 2] = ["mobile_phone", "openid"];

/// Renders one value for the string-to-sign: strings bare, numbers exactly as
/// written in the request, booleans as `true`/`false`, objects and arrays as
/// compact JSON with sorted keys.
fn render_value(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        other => canonical_json(other, out),
    }
}

/// Compact JSON with object keys sorted by byte order, recursively. Numbers
/// keep the text they were parsed from (serde_json's `arbitrary_precision`),
/// so `1.50` stays `1.50` and a 20-digit integer stays whole; strings are
/// UTF-8, escaped only where JSON requires it.
pub fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) => out.push_str(n.as_str()),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                canonical_json(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Whether a top-level field takes part in the string-to-sign, by name.
fn signed_key(key: &str, rule: &SignRule) -> bool {
    key != "sign" && (rule.fields == SignFields::All || COMMON_FIELDS.contains(&key))
}

/// The signed fields of a parsed body, rendered, in key byte order.
fn pairs(fields: &Map<String, Value>, rule: &SignRule) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = fields
        .iter()
        .filter(|(k, v)| signed_key(k, rule) && !v.is_null() && v.as_str() != Some(""))
        .map(|(k, v)| {
            let mut r = String::new();
            render_value(v, &mut r);
            (k.clone(), r)
        })
        .collect();
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    pairs
}

/// The signed fields of a body's raw text, rendered with every number byte for
/// byte as sent, in key byte order; `None` if the body is not a JSON object.
fn raw_pairs(body: &str, rule: &SignRule) -> Option<Vec<(String, String)>> {
    // A BTreeMap orders keys by bytes; a repeated key keeps its last value, as
    // the parsed `Map` does. Keys are borrowed from the body; only a body with
    // an escaped key (which cannot be borrowed) is read again with owned keys.
    match serde_json::from_str::<BTreeMap<&str, &RawValue>>(body) {
        Ok(top) => signed_pairs(top, rule),
        Err(_) => signed_pairs(
            serde_json::from_str::<BTreeMap<String, &RawValue>>(body).ok()?,
            rule,
        ),
    }
}

/// The signed ones of a body's top-level fields, rendered (see [`raw_pairs`]).
fn signed_pairs<K: AsRef<str>>(
    top: BTreeMap<K, &RawValue>,
    rule: &SignRule,
) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::with_capacity(top.len());
    for (k, v) in top {
        let (k, text) = (k.as_ref(), v.get());
        if !signed_key(k, rule) || text == "null" || text == "\"\"" {
            continue;
        }
        let r = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            // A string with no escape is its own text between the quotes.
            Some(bare) if !bare.contains('\\') => bare.to_string(),
            Some(_) => serde_json::from_str::<String>(text).ok()?,
            None => {
                let mut r = String::new();
                canonical_raw(v, &mut r).ok()?;
                r
            }
        };
        pairs.push((k.to_string(), r));
    }
    Some(pairs)
}

/// [`canonical_json`] of raw JSON text: objects re-read with sorted keys,
/// strings re-escaped the way serde_json writes them, and numbers, `true`,
/// `false` and `null` copied as written.
fn canonical_raw(raw: &RawValue, out: &mut String) -> Result<(), serde_json::Error> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => {
            let map: BTreeMap<String, &RawValue> = serde_json::from_str(text)?;
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(k, out)?;
                out.push(':');
                canonical_raw(v, out)?;
            }
            out.push('}');
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)?;
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_raw(v, out)?;
            }
            out.push(']');
        }
        Some(b'"') => push_json_string(&serde_json::from_str::<String>(text)?, out)?,
        _ => out.push_str(text),
    }
    Ok(())
}

fn push_json_string(s: &str, out: &mut String) -> Result<(), serde_json::Error> {
    out.push_str(&serde_json::to_string(s)?);
    Ok(())
}

fn join(pairs: &[(String, String)], key_name: &str, secret: &str) -> String {
    let len = pairs
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum::<usize>();
    let mut s = String::with_capacity(len + key_name.len() + 1 + secret.len());
    for (k, v) in pairs {
        s.push_str(k);
        s.push('=');
        s.push_str(v);
        s.push('&');
    }
    s.push_str(key_name);
    s.push('=');
    s.push_str(secret);
    s
}

fn masked(mut pairs: Vec<(String, String)>, key_name: &str) -> String {
    for (k, v) in &mut pairs {
        if PERSONAL_FIELDS.contains(&k.as_str()) {
            *v = MaskedPhone::mask(v).as_str().to_string();
        }
    }
    join(&pairs, key_name, "***")
}

/// The exact string that is hashed: `k1=v1&k2=v2...&key=<secret>`.
pub fn string_to_sign(fields: &Map<String, Value>, rule: &SignRule, secret: &str) -> String {
    join(&pairs(fields, rule), &rule.key_name, secret)
}

/// The string that is hashed for a request body as sent; `None` if the body is
/// not a UTF-8 JSON object.
pub fn string_to_sign_raw(body: &[u8], rule: &SignRule, secret: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    Some(join(&raw_pairs(text, rule)?, &rule.key_name, secret))
}

/// The string-to-sign with the secret and personal fields masked, safe for logs.
pub fn masked_string_to_sign(fields: &Map<String, Value>, rule: &SignRule) -> String {
    masked(pairs(fields, rule), &rule.key_name)
}

/// [`masked_string_to_sign`] of a request body as sent.
pub fn masked_string_to_sign_raw(body: &[u8], rule: &SignRule) -> String {
    match std::str::from_utf8(body)
        .ok()
        .and_then(|t| raw_pairs(t, rule))
    {
        Some(pairs) => masked(pairs, &rule.key_name),
        None => "(not a JSON object)".into(),
    }
}

/// Upper-case hex MD5 of a string.
pub fn md5_upper(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digest = Md5::digest(s.as_bytes());
    let mut out = String::with_capacity(2 * digest.len());
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xF)]));
    }
    out
}

/// The `sign` of a set of fields.
pub fn sign(fields: &Map<String, Value>, rule: &SignRule, secret: &str) -> String {
    md5_upper(&string_to_sign(fields, rule, secret))
}

/// Checks the `sign` field in constant time; a missing or non-string sign fails.
pub fn verify(fields: &Map<String, Value>, rule: &SignRule, secret: &str) -> bool {
    let Some(given) = fields.get("sign").and_then(Value::as_str) else {
        return false;
    };
    let expected = sign(fields, rule, secret);
    constant_time_eq(given.to_ascii_uppercase().as_bytes(), expected.as_bytes())
}

/// Checks the `sign` of a request body against the body's own text, so every
/// number is hashed exactly as the partner wrote it. `fields` is the same body,
/// parsed; a missing or non-string sign fails.
pub fn verify_body(
    body: &[u8],
    fields: &Map<String, Value>,
    rule: &SignRule,
    secret: &str,
) -> bool {
    let Some(given) = fields.get("sign").and_then(Value::as_str) else {
        return false;
    };
    let Some(expected) = string_to_sign_raw(body, rule, secret) else {
        return false;
    };
    constant_time_eq(
        given.to_ascii_uppercase().as_bytes(),
        md5_upper(&expected).as_bytes(),
    )
}

/// Compares two byte strings without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads `timestamp` (unix seconds, string or number) and checks it lies within
/// ±`window_s` of `now_s`. Returns the timestamp.
pub fn check_timestamp(v: Option<&Value>, now_s: i64, window_s: i64) -> Result<i64, LedgerError> {
    let ts = match v {
        None | Some(Value::Null) => return Err(LedgerError::invalid("timestamp", "required")),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) if s.len() <= 20 => s.parse::<i64>().ok(),
        Some(_) => None,
    }
    .ok_or_else(|| LedgerError::invalid("timestamp", "must be unix seconds"))?;
    if ts.abs_diff(now_s) > window_s.unsigned_abs() {
        return Err(LedgerError::TimestampOutOfWindow);
    }
    Ok(ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn wechat_pay_v2_test_vector() {
        let f = obj(json!({
            "appid": "wxd930ea5d5a258f4f",
            "mch_id": "10000100",
            "device_info": "1000",
            "body": "test",
            "nonce_str": "ibuaiVcKdpRxkhJA"
        }));
        let secret = "192006250b4c09247ec02edce69f6a2d";
        assert_eq!(
            sign(&f, &SignRule::default(), secret),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
    }

    #[test]
    fn spec_example_string() {
        let f = obj(json!({"api_key": "K", "b": 2, "a": "x", "sign": "zzz", "n": null, "e": ""}));
        assert_eq!(
            string_to_sign(&f, &SignRule::default(), "S"),
            "a=x&api_key=K&b=2&key=S"
        );
    }

    #[test]
    fn objects_render_compact_with_sorted_keys() {
        let f = obj(json!({"coupons": [{"stock_id": "s", "coupon_id": "1"}], "t": true}));
        assert_eq!(
            string_to_sign(&f, &SignRule::default(), "S"),
            r#"coupons=[{"coupon_id":"1","stock_id":"s"}]&t=true&key=S"#
        );
    }

    #[test]
    fn numbers_are_signed_as_written() {
        let body = br#"{"a":1.50,"b":12345678901234567890123,"c":1E3,"d":-0,"e":{"y":[2.0,"x"], "x":198.00},"sign":"x","n":null,"s":""}"#;
        let expected =
            r#"a=1.50&b=12345678901234567890123&c=1E3&d=-0&e={"x":198.00,"y":[2.0,"x"]}&key=S"#;
        assert_eq!(
            string_to_sign_raw(body, &SignRule::default(), "S").as_deref(),
            Some(expected)
        );
        // Parsed, the digits survive; only the exponent is spelled `e+`.
        let f: Map<String, Value> = serde_json::from_slice(body).unwrap();
        assert_eq!(
            string_to_sign(&f, &SignRule::default(), "S"),
            expected.replace("1E3", "1e+3")
        );
        let mut signed = f.clone();
        signed.insert(
            "sign".into(),
            Value::String(md5_upper(expected).to_ascii_lowercase()),
        );
        let body2 = String::from_utf8_lossy(body).replace(
            r#""sign":"x""#,
            &format!("\"sign\":\"{}\"", md5_upper(expected)),
        );
        assert!(verify_body(
            body2.as_bytes(),
            &signed,
            &SignRule::default(),
            "S"
        ));
        assert!(!verify_body(
            body2.as_bytes(),
            &signed,
            &SignRule::default(),
            "T"
        ));
        assert!(!verify(&signed, &SignRule::default(), "S"));
    }

    #[test]
    fn escaped_keys_and_strings_sign_as_their_parse() {
        // An escaped key cannot be borrowed from the body: it is read again
        // with owned keys. A repeated key keeps its last value either way.
        for body in [
            r#"{"\u0061":"x","b":"y\"z\u00e9","c":"plain","c":"again"}"#,
            r#"{"a":"x","b":"y\"z","c":"plain","c":"again"}"#,
        ] {
            let f: Map<String, Value> = serde_json::from_str(body).unwrap();
            let raw = string_to_sign_raw(body.as_bytes(), &SignRule::default(), "S");
            assert_eq!(raw, Some(string_to_sign(&f, &SignRule::default(), "S")));
        }
        assert_eq!(
            string_to_sign_raw(
                br#"{"\u0061":"x","b":"y\"z\u00e9"}"#,
                &SignRule::default(),
                "S"
            ),
            Some("a=x&b=y\"zé&key=S".to_string())
        );
        assert_eq!(md5_upper(""), "D41D8CD98F00B204E9800998ECF8427E");
    }

    #[test]
    fn nested_strings_stay_utf8() {
        let f = obj(json!({"o": {"n": "代金券\"q\"", "t": "\u{1}"}}));
        assert_eq!(
            string_to_sign(&f, &SignRule::default(), "S"),
            "o={\"n\":\"代金券\\\"q\\\"\",\"t\":\"\\u0001\"}&key=S"
        );
    }

    #[test]
    fn common_mode_and_key_name() {
        let f = obj(
            json!({"api_key": "K", "nonce": "n", "seq_id": "q", "timestamp": 5, "stock_id": "x"}),
        );
        let rule = SignRule {
            fields: SignFields::Common,
            key_name: "secretKey".into(),
        };
        assert_eq!(
            string_to_sign(&f, &rule, "S"),
            "api_key=K&nonce=n&seq_id=q&timestamp=5&secretKey=S"
        );
    }

    #[test]
    fn verify_accepts_the_right_sign_only() {
        let mut f = obj(json!({"api_key": "K", "a": "x"}));
        let s = sign(&f, &SignRule::default(), "S");
        f.insert("sign".into(), Value::String(s.to_ascii_lowercase()));
        assert!(verify(&f, &SignRule::default(), "S"));
        assert!(!verify(&f, &SignRule::default(), "T"));
        f.insert("sign".into(), json!(1));
        assert!(!verify(&f, &SignRule::default(), "S"));
    }

    #[test]
    fn masked_string_hides_secret_and_phone() {
        let f = obj(json!({"mobile_phone": "13911112222", "a": "x"}));
        assert_eq!(
            masked_string_to_sign(&f, &SignRule::default()),
            "a=x&mobile_phone=139****2222&key=***"
        );
    }

    #[test]
    fn timestamp_window() {
        assert_eq!(check_timestamp(Some(&json!("1000")), 1100, 300), Ok(1000));
        assert_eq!(check_timestamp(Some(&json!(1400)), 1100, 300), Ok(1400));
        assert_eq!(
            check_timestamp(Some(&json!(1401)), 1100, 300),
            Err(LedgerError::TimestampOutOfWindow)
        );
        assert!(check_timestamp(Some(&json!("abc")), 1100, 300).is_err());
        assert_eq!(
            check_timestamp(Some(&json!(i64::MIN)), 1100, 300),
            Err(LedgerError::TimestampOutOfWindow)
        );
        assert_eq!(
            check_timestamp(Some(&json!(i64::MIN + 1100)), 1100, 300),
            Err(LedgerError::TimestampOutOfWindow)
        );
        assert!(check_timestamp(None, 1100, 300).is_err());
    }
}
