//! Request signing (SPEC §3): canonical string, MD5, timestamp window.
//! Nonce bookkeeping lives in the store, since it must survive a restart.

use md5::{Digest, Md5};
use serde_json::{Map, Value};

use crate::domain::coupon::mask_phone;
use crate::domain::LedgerError;

/// Which fields a partner signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignFields {
    /// Every top-level field but `sign` (the WeChat Pay v2 rule).
    #[default]
    All,
    /// Only the common parameters: `api_key`, `nonce`, `seq_id`, `timestamp`
    /// (and their §8 names `agent_no`, `req_id`).
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

/// Renders one value for the string-to-sign: strings bare, numbers and
/// booleans as JSON text, objects and arrays as compact JSON with sorted keys.
fn render_value(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        other => canonical_json(other, out),
    }
}

/// Compact JSON with object keys sorted by byte order, recursively.
pub fn canonical_json(v: &Value, out: &mut String) {
    match v {
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

fn pairs<'a>(fields: &'a Map<String, Value>, rule: &SignRule) -> Vec<(&'a String, &'a Value)> {
    let mut pairs: Vec<(&String, &Value)> = fields
        .iter()
        .filter(|(k, v)| {
            k.as_str() != "sign"
                && !v.is_null()
                && v.as_str() != Some("")
                && (rule.fields == SignFields::All || COMMON_FIELDS.contains(&k.as_str()))
        })
        .collect();
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    pairs
}

/// The exact string that is hashed: `k1=v1&k2=v2...&key=<secret>`.
pub fn string_to_sign(fields: &Map<String, Value>, rule: &SignRule, secret: &str) -> String {
    let mut s = String::new();
    for (k, v) in pairs(fields, rule) {
        s.push_str(k);
        s.push('=');
        render_value(v, &mut s);
        s.push('&');
    }
    s.push_str(&rule.key_name);
    s.push('=');
    s.push_str(secret);
    s
}

/// The string-to-sign with the secret and personal fields masked, safe for logs.
pub fn masked_string_to_sign(fields: &Map<String, Value>, rule: &SignRule) -> String {
    let mut s = String::new();
    for (k, v) in pairs(fields, rule) {
        s.push_str(k);
        s.push('=');
        if PERSONAL_FIELDS.contains(&k.as_str()) {
            let mut raw = String::new();
            render_value(v, &mut raw);
            s.push_str(&mask_phone(&raw));
        } else {
            render_value(v, &mut s);
        }
        s.push('&');
    }
    s.push_str(&rule.key_name);
    s.push_str("=***");
    s
}

/// Upper-case hex MD5 of a string.
pub fn md5_upper(s: &str) -> String {
    let digest = Md5::digest(s.as_bytes());
    digest.iter().map(|b| format!("{b:02X}")).collect()
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
