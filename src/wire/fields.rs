//! Reading typed, length-checked fields out of a JSON object. Every refusal is a
//! 40001 naming the field and the rule (docs/protocol.md, conventions).

use serde_json::{Map, Number, Value};

use crate::domain::ids::{MaskedPhone, Name};
use crate::domain::time::{parse_time, Millis};
use crate::domain::LedgerError;

/// Money fields are `long` of at most 20 digits; i64 holds 18 safely.
pub const MAX_FEN: i64 = 999_999_999_999_999_999;
/// `int` fields of at most 11 characters.
pub const MAX_INT: i64 = 2_147_483_647;
/// The largest `app_channel_id` (10 digits).
pub const MAX_CHANNEL: i64 = 9_999_999_999;
/// The largest shop id.
pub const MAX_SHOP: i64 = MAX_INT;

/// Parses a request body into a JSON object: UTF-8, JSON, and an object, or 40002.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, LedgerError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| LedgerError::NotJsonObject("body is not UTF-8".into()))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(LedgerError::NotJsonObject(
            "body is not a JSON object".into(),
        )),
        Err(e) => Err(LedgerError::NotJsonObject(format!(
            "body is not valid JSON: {e}"
        ))),
    }
}

/// Why a JSON number is not an acceptable `i64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotI64 {
    /// It has a fraction or an exponent (`1.5`, `100.0`, `1e3`).
    NotInteger,
    /// An integer literal past `i64` (`99999999999999999999`).
    OutOfRange,
}

/// Reads a number as sent: only an integer literal (`-?[0-9]+`, no fraction or
/// exponent) counts as an integer. Numbers keep their text, so `100.0` is not
/// silently taken as 100.
fn integer(n: &Number) -> Result<i64, NotI64> {
    let text = n.as_str();
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NotI64::NotInteger);
    }
    text.parse().map_err(|_| NotI64::OutOfRange)
}

/// A JSON object being read field by field; `prefix` names nested objects in errors.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    /// Reads the top level of a body.
    pub fn new(map: &'a Map<String, Value>) -> Fields<'a> {
        Fields {
            map,
            prefix: String::new(),
        }
    }

    /// Reads a nested record whose errors are named `<prefix><field>`.
    pub fn with_prefix(map: &'a Map<String, Value>, prefix: &str) -> Fields<'a> {
        Fields {
            map,
            prefix: prefix.to_string(),
        }
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    fn err(&self, field: &str, rule: &str) -> LedgerError {
        LedgerError::invalid(&self.name(field), rule)
    }

    /// A validation error on `field`, named with this record's prefix.
    pub fn invalid(&self, field: &str, rule: &str) -> LedgerError {
        self.err(field, rule)
    }

    /// The raw value; `null` counts as absent.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    /// True when the field is present and not null.
    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    /// A required, non-empty string of at most `max` characters.
    pub fn str(&self, field: &str, max: usize) -> Result<String, LedgerError> {
        self.opt_str(field, max)?
            .ok_or_else(|| self.err(field, "required"))
    }

    /// A required name (`stock_id`, `user_code`, ...), checked by its type's rule.
    pub fn named<T: Name>(&self) -> Result<T, LedgerError> {
        T::parse(self.str(T::FIELD, T::MAX_CHARS)?)
    }

    /// An optional name; `""` counts as absent.
    pub fn opt_named<T: Name>(&self) -> Result<Option<T>, LedgerError> {
        self.opt_str(T::FIELD, T::MAX_CHARS)?
            .map(T::parse)
            .transpose()
    }

    /// An optional phone number, masked at once: the full number goes no further.
    pub fn opt_masked_phone(&self, field: &str) -> Result<Option<MaskedPhone>, LedgerError> {
        Ok(self.opt_phone(field)?.map(|p| MaskedPhone::mask(&p)))
    }

    /// An optional string of at most `max` characters; `""` counts as absent.
    pub fn opt_str(&self, field: &str, max: usize) -> Result<Option<String>, LedgerError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => {
                if s.chars().count() > max {
                    return Err(self.err(field, &format!("longer than {max} characters")));
                }
                Ok(Some(s.clone()))
            }
            Some(_) => Err(self.err(field, "must be a string")),
        }
    }

    /// A required integer (a JSON number without fraction) within `min..=max`.
    pub fn int(&self, field: &str, min: i64, max: i64) -> Result<i64, LedgerError> {
        self.opt_int(field, min, max)?
            .ok_or_else(|| self.err(field, "required"))
    }

    /// An optional integer within `min..=max`.
    pub fn opt_int(&self, field: &str, min: i64, max: i64) -> Result<Option<i64>, LedgerError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let range = || self.err(field, &format!("must be between {min} and {max}"));
                let v = match integer(n) {
                    Ok(v) => v,
                    Err(NotI64::NotInteger) => return Err(self.err(field, "must be an integer")),
                    Err(NotI64::OutOfRange) => return Err(range()),
                };
                if v < min || v > max {
                    return Err(range());
                }
                Ok(Some(v))
            }
            Some(_) => Err(self.err(field, "must be an integer")),
        }
    }

    /// A required time with an offset, at most 32 characters, as UTC milliseconds.
    pub fn time(&self, field: &str) -> Result<Millis, LedgerError> {
        self.opt_time(field)?
            .ok_or_else(|| self.err(field, "required"))
    }

    /// An optional time with an offset.
    pub fn opt_time(&self, field: &str) -> Result<Option<Millis>, LedgerError> {
        match self.opt_str(field, 32)? {
            None => Ok(None),
            Some(s) => parse_time(&s)
                .map(Some)
                .map_err(|rule| self.err(field, &rule)),
        }
    }

    /// An optional nested object, read with the field's name as prefix.
    pub fn opt_object(&self, field: &str) -> Result<Option<Fields<'a>>, LedgerError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Fields {
                map: m,
                prefix: format!("{}.", self.name(field)),
            })),
            Some(_) => Err(self.err(field, "must be an object")),
        }
    }

    /// A required array of objects with `min..=max` items.
    pub fn objects(
        &self,
        field: &str,
        min: usize,
        max: usize,
    ) -> Result<Vec<Fields<'a>>, LedgerError> {
        let items = match self.get(field) {
            None => return Err(self.err(field, "required")),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(self.err(field, "must be an array")),
        };
        if items.len() < min || items.len() > max {
            return Err(self.err(field, &format!("must hold {min} to {max} items")));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(m) => Ok(Fields {
                    map: m,
                    prefix: format!("{}[{i}].", self.name(field)),
                }),
                _ => Err(LedgerError::invalid(
                    &format!("{}[{i}]", self.name(field)),
                    "must be an object",
                )),
            })
            .collect()
    }

    /// A required non-empty array of integers within `min..=max`.
    pub fn ints(&self, field: &str, min: i64, max: i64) -> Result<Vec<i64>, LedgerError> {
        let items = match self.get(field) {
            None => return Err(self.err(field, "required")),
            Some(Value::Array(items)) if !items.is_empty() => items,
            Some(_) => return Err(self.err(field, "must be a non-empty array of integers")),
        };
        items
            .iter()
            .map(|v| {
                let n = match v {
                    Value::Number(n) => integer(n).ok(),
                    _ => None,
                };
                n.filter(|n| (min..=max).contains(n)).ok_or_else(|| {
                    self.err(
                        field,
                        &format!("items must be integers between {min} and {max}"),
                    )
                })
            })
            .collect()
    }

    /// An integer sent as a JSON integer or as a string of digits, within `min..=max`.
    pub fn lenient_int(&self, field: &str, min: i64, max: i64) -> Result<i64, LedgerError> {
        let n = match self.get(field) {
            None => return Err(self.err(field, "required")),
            Some(Value::Number(n)) => integer(n).ok(),
            Some(Value::String(s))
                if !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()) =>
            {
                s.parse().ok()
            }
            Some(_) => None,
        };
        n.filter(|n| (min..=max).contains(n)).ok_or_else(|| {
            self.err(
                field,
                &format!("must be an integer between {min} and {max}"),
            )
        })
    }

    /// An optional mobile phone: digits only, at most 11.
    pub fn opt_phone(&self, field: &str) -> Result<Option<String>, LedgerError> {
        let phone = self.opt_str(field, 11)?;
        if let Some(p) = &phone {
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(self.err(field, "must be digits only"));
            }
        }
        Ok(phone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn bodies_must_be_utf8_json_objects() {
        assert_eq!(parse_object(b"[1]").unwrap_err().code(), 40002);
        assert_eq!(parse_object(b"{").unwrap_err().code(), 40002);
        assert_eq!(parse_object(&[0xff, 0xfe]).unwrap_err().code(), 40002);
        assert!(parse_object(b"{}").is_ok());
    }

    #[test]
    fn strings_are_counted_in_characters() {
        let m = map(json!({"name": "代驾代金券代驾代金券", "n": 1, "e": ""}));
        let f = Fields::new(&m);
        assert_eq!(f.str("name", 10).unwrap().chars().count(), 10);
        assert_eq!(
            f.str("name", 9).unwrap_err().message(),
            "name: longer than 9 characters"
        );
        assert_eq!(f.str("n", 9).unwrap_err().message(), "n: must be a string");
        assert_eq!(f.str("e", 9).unwrap_err().message(), "e: required");
        assert_eq!(
            f.str("missing", 9).unwrap_err().message(),
            "missing: required"
        );
    }

    #[test]
    fn integers_are_strict() {
        let m = map(json!({"a": 1.5, "b": "1", "c": 7}));
        let f = Fields::new(&m);
        assert_eq!(
            f.int("a", 0, 9).unwrap_err().message(),
            "a: must be an integer"
        );
        assert_eq!(
            f.int("b", 0, 9).unwrap_err().message(),
            "b: must be an integer"
        );
        assert_eq!(
            f.int("c", 0, 5).unwrap_err().message(),
            "c: must be between 0 and 5"
        );
    }

    #[test]
    fn integers_must_be_integer_literals() {
        let m = parse_object(
            br#"{"a":100.0,"b":1e3,"c":99999999999999999999,"d":-1,"e":-0,"f":100,"g":[1,2.0]}"#,
        )
        .unwrap();
        let f = Fields::new(&m);
        let max = 999_999_999_999_999_999;
        let msg = |field: &str| f.int(field, 0, max).unwrap_err().message();
        assert_eq!(msg("a"), "a: must be an integer");
        assert_eq!(msg("b"), "b: must be an integer");
        assert_eq!(msg("c"), format!("c: must be between 0 and {max}"));
        assert_eq!(msg("d"), format!("d: must be between 0 and {max}"));
        assert_eq!(f.int("e", 0, max), Ok(0));
        assert_eq!(f.int("f", 0, max), Ok(100));
        assert!(f.ints("g", 0, 9).is_err());
        assert_eq!(f.lenient_int("b", 0, max).unwrap_err().code(), 40001);
    }

    #[test]
    fn nested_names_carry_their_path() {
        let m = map(json!({"coupons": [{"stock_id": 1}]}));
        let f = Fields::new(&m);
        let items = f.objects("coupons", 1, 10).unwrap();
        assert_eq!(
            items[0].str("stock_id", 30).unwrap_err().message(),
            "coupons[0].stock_id: must be a string"
        );
    }
}
