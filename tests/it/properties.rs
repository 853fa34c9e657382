//! Property tests of the pure parts: the signing canonicaliser, the request
//! field readers, fen → yuan rendering, time rendering and parsing, and the
//! stock and coupon state machines.

use std::collections::BTreeMap;

use coupon_ledger::domain::money::yuan;
use coupon_ledger::domain::stock::{CouponStatus, StockStatus};
use coupon_ledger::domain::time::{
    parse_time, render_local, render_millis, render_rfc3339_seconds, MAX_MS, MIN_MS,
};
use coupon_ledger::sign::{self, SignFields, SignRule};
use coupon_ledger::wire::fields::{parse_object, Fields};
use coupon_ledger::wire::voucher::parse_voucher;
use proptest::prelude::*;
use serde_json::{Map, Value};
use time::UtcOffset;

// ---------- JSON text generators ----------

/// A JSON number as a partner might write it: any digits, optional fraction,
/// optional exponent in either case, with or without its sign.
fn number_text() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?"
}

/// A number without an exponent, which a parsed `Value` keeps byte for byte.
fn plain_number_text() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,20})?"
}

fn string_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        // Escapes a serializer would not write, including \u and \/.
        "[a-z]{0,3}".prop_map(|s| format!("\"\\u00e9\\/\\u4e2d{s}\\n\"")),
        Just("\"\"".to_string()),
    ]
}

/// Any JSON value as text, with `number` for its numbers and optional
/// whitespace between tokens.
fn json_text(number: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        number,
        string_text(),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        let ws = prop_oneof![Just(""), Just(" "), Just("\n  ")];
        prop_oneof![
            (prop::collection::vec(inner.clone(), 0..5), ws.clone())
                .prop_map(|(items, ws)| format!("[{ws}{}]", items.join(&format!(",{ws}")))),
            (prop::collection::vec(("[a-zA-Z_é]{0,6}", inner), 0..5), ws).prop_map(
                |(pairs, ws)| {
                    let body: Vec<String> = pairs
                        .iter()
                        .map(|(k, v)| format!("{}{ws}:{ws}{v}", serde_json::to_string(k).unwrap()))
                        .collect();
                    format!("{{{ws}{}{ws}}}", body.join(","))
                }
            ),
        ]
    })
}

/// Top-level fields with unique keys, as (key, value text).
fn fields_text(number: BoxedStrategy<String>) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map("[a-z_]{1,8}", json_text(number), 0..8)
        .prop_map(|m| m.into_iter().collect())
}

fn object_text(fields: &[(String, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}: {v}", serde_json::to_string(k).unwrap()))
        .collect();
    format!("{{{}}}", body.join(", "))
}

fn rules() -> impl Strategy<Value = SignRule> {
    (
        prop_oneof![Just(SignFields::All), Just(SignFields::Common)],
        prop_oneof![Just("key".to_string()), Just("secretKey".to_string())],
    )
        .prop_map(|(fields, key_name)| SignRule { fields, key_name })
}

fn parse(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text).unwrap() {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

// ---------- signing ----------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_canonicaliser_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200), rule in rules()) {
        let _ = sign::string_to_sign_raw(&bytes, &rule, "S");
        let _ = sign::masked_string_to_sign_raw(&bytes, &rule);
        if let Ok(m) = parse_object(&bytes) {
            let _ = sign::string_to_sign(&m, &rule, "S");
        }
    }

    #[test]
    fn the_canonicaliser_never_panics_on_any_json(text in json_text(number_text().boxed()), rule in rules()) {
        let _ = sign::string_to_sign_raw(text.as_bytes(), &rule, "S");
        let wrapped = format!("{{\"a\": {text}, \"b\": [{text}]}}");
        let raw = sign::string_to_sign_raw(wrapped.as_bytes(), &rule, "S");
        prop_assert!(raw.is_some(), "{wrapped}");
    }

    #[test]
    fn field_order_does_not_change_the_sign(
        fields in fields_text(number_text().boxed()),
        seed in any::<u64>(),
        rule in rules(),
    ) {
        let mut shuffled = fields.clone();
        // A deterministic shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let (a, b) = (object_text(&fields), object_text(&shuffled));
        prop_assert_eq!(
            sign::string_to_sign_raw(a.as_bytes(), &rule, "S"),
            sign::string_to_sign_raw(b.as_bytes(), &rule, "S")
        );
        prop_assert_eq!(
            sign::string_to_sign(&parse(&a), &rule, "S"),
            sign::string_to_sign(&parse(&b), &rule, "S")
        );
    }

    #[test]
    fn a_numbers_text_survives_into_the_string_to_sign(
        n in number_text(),
        plain in plain_number_text(),
        fields in fields_text(number_text().boxed()),
    ) {
        // `~` sorts after every generated key.
        let mut all = fields;
        all.push(("~n".into(), plain.clone()));
        all.push(("~p".into(), format!("{{\"x\": [{n}]}}")));
        let text = object_text(&all);
        let rule = SignRule::default();
        let raw = sign::string_to_sign_raw(text.as_bytes(), &rule, "S").unwrap();
        let tail = format!("~n={plain}&~p={{\"x\":[{n}]}}&key=S");
        prop_assert!(raw.ends_with(&tail), "{} does not end with {}", raw, tail);
        // A parsed body keeps the digits too (only an exponent is respelled).
        let parsed = sign::string_to_sign(&parse(&text), &rule, "S");
        let plain_part = format!("~n={plain}&");
        prop_assert!(parsed.contains(&plain_part), "{}", parsed);
    }

    #[test]
    fn the_sign_of_a_body_equals_the_sign_of_its_re_parse(
        fields in fields_text(plain_number_text().boxed()),
        any_fields in fields_text(number_text().boxed()),
        rule in rules(),
    ) {
        // Without exponents, the raw text and the parsed body sign alike.
        let text = object_text(&fields);
        let m = parse(&text);
        prop_assert_eq!(
            sign::string_to_sign_raw(text.as_bytes(), &rule, "S"),
            Some(sign::string_to_sign(&m, &rule, "S"))
        );
        // With any numbers, what the ledger serialises is signed as it is sent,
        // and parsing it again changes nothing.
        let m = parse(&object_text(&any_fields));
        let sent = Value::Object(m.clone()).to_string();
        let expected = sign::string_to_sign(&m, &rule, "S");
        prop_assert_eq!(sign::string_to_sign_raw(sent.as_bytes(), &rule, "S"), Some(expected.clone()));
        prop_assert_eq!(sign::string_to_sign(&parse(&sent), &rule, "S"), expected);
    }

    #[test]
    fn verify_body_accepts_its_own_sign_and_nothing_else(
        fields in fields_text(number_text().boxed()),
        rule in rules(),
    ) {
        let mut all: Vec<(String, String)> = fields.into_iter().filter(|(k, _)| k != "sign").collect();
        let unsigned = object_text(&all);
        let s = sign::md5_upper(&sign::string_to_sign_raw(unsigned.as_bytes(), &rule, "S").unwrap());
        all.push(("sign".into(), format!("\"{s}\"")));
        let body = object_text(&all);
        let m = parse(&body);
        prop_assert!(sign::verify_body(body.as_bytes(), &m, &rule, "S"));
        prop_assert!(!sign::verify_body(body.as_bytes(), &m, &rule, "T"));
    }
}

// ---------- field readers ----------

fn readers_on(f: &Fields, key: &str) -> Vec<Option<i64>> {
    let code = |r: Result<(), coupon_ledger::domain::LedgerError>| r.err().map(|e| e.code());
    vec![
        code(f.str(key, 5).map(drop)),
        code(f.opt_str(key, 5).map(drop)),
        code(f.int(key, -5, 5).map(drop)),
        code(f.opt_int(key, 0, 999_999_999_999_999_999).map(drop)),
        code(f.time(key).map(drop)),
        code(f.opt_time(key).map(drop)),
        code(f.opt_object(key).map(drop)),
        code(f.objects(key, 1, 3).map(drop)),
        code(f.ints(key, 0, 2_147_483_647).map(drop)),
        code(f.lenient_int(key, 0, 2_147_483_647).map(drop)),
        code(f.opt_phone(key).map(drop)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn field_readers_never_panic_and_refuse_with_40001(
        fields in fields_text(number_text().boxed()),
        probe in "[a-z_]{1,8}",
    ) {
        let m = parse(&object_text(&fields));
        for f in [Fields::new(&m), Fields::with_prefix(&m, "[3].")] {
            let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
            keys.push(&probe);
            for key in keys {
                for code in readers_on(&f, key).into_iter().flatten() {
                    prop_assert_eq!(code, 40001, "{}", key);
                }
                if let Ok(Some(nested)) = f.opt_object(key) {
                    for k in ["a", "b", "x", key] {
                        for code in readers_on(&nested, k).into_iter().flatten() {
                            prop_assert_eq!(code, 40001);
                        }
                    }
                }
            }
            if let Err(e) = parse_voucher(&f) {
                prop_assert_eq!(e.code(), 40001);
            }
        }
    }

    #[test]
    fn bodies_are_objects_or_40002(bytes in prop::collection::vec(any::<u8>(), 0..100), text in json_text(number_text().boxed())) {
        if let Err(e) = parse_object(&bytes) {
            prop_assert_eq!(e.code(), 40002);
        }
        match parse_object(text.as_bytes()) {
            Ok(_) => prop_assert!(text.starts_with('{'), "{}", text),
            Err(e) => {
                prop_assert_eq!(e.code(), 40002);
                prop_assert!(!text.starts_with('{'), "{}", text);
            }
        }
    }

    #[test]
    fn integer_fields_take_integer_literals_only(n in number_text()) {
        let m = parse(&format!("{{\"n\": {n}}}"));
        let f = Fields::new(&m);
        let literal = !n.contains(['.', 'e', 'E']);
        match (f.int("n", i64::MIN, i64::MAX), n.parse::<i64>()) {
            (Ok(v), Ok(expected)) => prop_assert!(literal && v == expected),
            (Ok(v), Err(_)) => prop_assert!(false, "{} read as {}", n, v),
            (Err(e), parsed) => {
                prop_assert_eq!(e.code(), 40001);
                prop_assert!(!literal || parsed.is_err(), "{} refused: {}", n, e.message());
            }
        }
    }
}

// ---------- money ----------

/// Reads a yuan string back into fen, exactly.
fn fen_of(yuan: &str) -> Option<i128> {
    let (neg, digits) = match yuan.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, yuan),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || frac.len() > 2 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let cents: i128 = format!("{frac:0<2}").parse().ok()?;
    let v = whole.parse::<i128>().ok()? * 100 + cents;
    Some(if neg { -v } else { v })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn yuan_round_trips_without_trailing_zeros(fen in prop_oneof![any::<i64>(), -100_000i64..100_000, Just(i64::MIN), Just(i64::MAX)]) {
        let y = yuan(fen);
        prop_assert_eq!(fen_of(&y), Some(i128::from(fen)), "{}", y);
        if let Some((_, frac)) = y.split_once('.') {
            prop_assert!(!frac.is_empty() && !frac.ends_with('0'), "{}", y);
        }
        let whole = y.trim_start_matches('-').split('.').next().unwrap_or_default();
        prop_assert!(whole == "0" || !whole.starts_with('0'), "{}", y);
        prop_assert!(y != "-0" && !y.starts_with('+'), "{}", y);
        // The rendering is a valid JSON number with the same value.
        let v: Value = serde_json::from_str(&y).unwrap();
        prop_assert_eq!(v.to_string(), y);
    }
}

// ---------- time ----------

fn offsets() -> impl Strategy<Value = UtcOffset> {
    (-14i8..=14, 0i8..=59).prop_filter_map("a valid offset", |(h, m)| {
        let m = if h < 0 { -m } else { m };
        UtcOffset::from_hms(h, m, 0).ok()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn rendered_times_parse_back_to_the_same_millisecond(
        ms in prop_oneof![MIN_MS..=MAX_MS, MIN_MS..100_000_000, MAX_MS - 100_000_000..=MAX_MS, Just(MIN_MS), Just(MAX_MS)],
        offset in offsets(),
    ) {
        let shown = render_millis(ms, offset);
        let seconds = render_rfc3339_seconds(ms, offset);
        let local = render_local(ms, offset);
        prop_assert_eq!(shown.len(), 29, "{}", shown);
        prop_assert_eq!(&shown[..19], &local.replace(' ', "T"));
        // The last instants of 9999 UTC fall into year 10000 in a positive
        // offset; those saturate at the last millisecond of 9999 local.
        let local_max = MAX_MS - i64::from(offset.whole_seconds()) * 1000;
        if ms <= local_max {
            prop_assert_eq!(parse_time(&shown), Ok(ms), "{}", shown);
            prop_assert_eq!(parse_time(&seconds), Ok(ms - ms % 1000), "{}", seconds);
        } else {
            prop_assert!(shown.starts_with("9999-12-31T23:59:59.999"), "{}", shown);
            prop_assert_eq!(parse_time(&shown), Ok(local_max));
        }
    }

    #[test]
    fn rendering_any_millisecond_never_panics(ms in any::<i64>(), offset in offsets()) {
        let _ = (render_millis(ms, offset), render_rfc3339_seconds(ms, offset), render_local(ms, offset));
    }

    #[test]
    fn parse_time_never_panics(s in "\\PC{0,40}", t in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})") {
        let _ = parse_time(&s);
        if let Ok(ms) = parse_time(&t) {
            prop_assert!((MIN_MS..=MAX_MS).contains(&ms), "{}", t);
        }
    }
}

// ---------- state machines ----------

fn stock_allowed(from: i64, to: i64) -> bool {
    matches!(
        (from, to),
        (1, 2) | (1, 3) | (2, 1) | (2, 3) | (3, 5) | (5, 3)
    ) || (from != 4 && to == 4 && (1..=5).contains(&from))
}

fn coupon_allowed(from: i64, to: i64) -> bool {
    matches!((from, to), (1, 2) | (1, 3) | (1, 4) | (2, 1))
}

proptest! {
    #[test]
    fn status_codes_never_panic(from in any::<i64>(), to in any::<i64>()) {
        if let (Some(a), Some(b)) = (StockStatus::from_code(from), StockStatus::from_code(to)) {
            prop_assert_eq!(a.can_become(b), stock_allowed(from, to));
            prop_assert_eq!(a.code(), from);
        } else {
            prop_assert!(!(1..=5).contains(&from) || !(1..=5).contains(&to));
        }
        if let (Some(a), Some(b)) = (CouponStatus::from_code(from), CouponStatus::from_code(to)) {
            prop_assert_eq!(a.can_become(b), coupon_allowed(from, to));
            prop_assert_eq!(a.code(), from);
        } else {
            prop_assert!(!(1..=4).contains(&from) || !(1..=4).contains(&to));
        }
    }
}

/// Every pair of known codes, against the documented table.
#[test]
fn status_tables_match_the_documented_transitions() {
    let mut stock = BTreeMap::new();
    for from in 0..=6 {
        for to in 0..=6 {
            if let (Some(a), Some(b)) = (StockStatus::from_code(from), StockStatus::from_code(to)) {
                stock.insert((from, to), a.can_become(b));
            }
        }
    }
    assert_eq!(stock.len(), 25);
    let allowed: Vec<(i64, i64)> = stock
        .iter()
        .filter(|(_, ok)| **ok)
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(
        allowed,
        vec![
            (1, 2),
            (1, 3),
            (1, 4),
            (2, 1),
            (2, 3),
            (2, 4),
            (3, 4),
            (3, 5),
            (5, 3),
            (5, 4)
        ]
    );
    let mut coupon = Vec::new();
    for from in 0..=5 {
        for to in 0..=5 {
            if let (Some(a), Some(b)) = (CouponStatus::from_code(from), CouponStatus::from_code(to))
            {
                if a.can_become(b) {
                    coupon.push((from, to));
                }
                assert_eq!(a.is_final(), from == 3 || from == 4);
            }
        }
    }
    assert_eq!(coupon, vec![(1, 2), (1, 3), (1, 4), (2, 1)]);
}
