//! Times: stored as UTC milliseconds, rendered in the configured offset (docs/protocol.md, conventions).

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Milliseconds since the Unix epoch, UTC. The only time representation the ledger stores.
pub type Millis = i64;

/// The current time in UTC milliseconds.
pub fn now_ms() -> Millis {
    let now = OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as Millis
}

/// The first millisecond the ledger accepts: 1970-01-01T00:00:00.000Z.
pub const MIN_MS: Millis = 0;
/// The last millisecond the ledger accepts: 9999-12-31T23:59:59.999Z.
pub const MAX_MS: Millis = 253_402_300_799_999;

/// `ms` seen in `offset`. A time whose local date would fall past year 9999
/// (the last instants of 9999 in a positive offset) saturates at
/// 9999-12-31T23:59:59.999 local, since the formats have four-digit years;
/// nothing here panics, whatever `ms` is.
fn at(ms: Millis, offset: UtcOffset) -> OffsetDateTime {
    let utc = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .or_else(|| {
            let edge = if ms < 0 { MIN_MS } else { MAX_MS };
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(edge) * 1_000_000).ok()
        })
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    utc.checked_to_offset(offset).unwrap_or_else(|| {
        let last = time::macros::datetime!(9999-12-31 23:59:59.999);
        let first = time::macros::datetime!(-9999-01-01 00:00:00);
        if utc.year() > 0 { last } else { first }.assume_offset(offset)
    })
}

/// `yyyy-MM-ddTHH:mm:ss.SSS+08:00`, the platform protocol's format.
///
/// Written digit by digit: every answer carries two or three of these, and
/// `time`'s format descriptions cost a claim's connection thread about as
/// much as the rest of the answer. A unit test holds the two equal.
pub fn render_millis(ms: Millis, offset: UtcOffset) -> String {
    let t = at(ms, offset);
    let Ok(year) = u16::try_from(t.year()) else {
        return t.format(MILLIS_FORMAT).unwrap_or_default();
    };
    let mut s = String::with_capacity(29);
    push_digits(&mut s, u32::from(year), 4);
    s.push('-');
    push_digits(&mut s, u32::from(u8::from(t.month())), 2);
    s.push('-');
    push_digits(&mut s, u32::from(t.day()), 2);
    s.push('T');
    push_digits(&mut s, u32::from(t.hour()), 2);
    s.push(':');
    push_digits(&mut s, u32::from(t.minute()), 2);
    s.push(':');
    push_digits(&mut s, u32::from(t.second()), 2);
    s.push('.');
    push_digits(&mut s, u32::from(t.millisecond()), 3);
    let (h, m, _) = offset.as_hms();
    s.push(if offset.is_negative() { '-' } else { '+' });
    push_digits(&mut s, u32::from(h.unsigned_abs()), 2);
    s.push(':');
    push_digits(&mut s, u32::from(m.unsigned_abs()), 2);
    s
}

/// What [`render_millis`] writes, for the years it does not write by hand.
const MILLIS_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory]:[offset_minute]"
);

/// `n` in exactly `width` decimal digits, zero-padded (`n` < 10^`width`).
fn push_digits(s: &mut String, n: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = n / 10u32.pow(place) % 10;
        s.push(char::from(b'0' + digit as u8));
    }
}

/// RFC 3339 without fraction, `2024-11-07T16:10:29+08:00` (the coupon query).
pub fn render_rfc3339_seconds(ms: Millis, offset: UtcOffset) -> String {
    let fmt = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
    );
    at(ms, offset).format(fmt).unwrap_or_default()
}

/// `yyyy-MM-dd HH:mm:ss` in the configured offset (the voucher gateway).
pub fn render_local(ms: Millis, offset: UtcOffset) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    at(ms, offset).format(fmt).unwrap_or_default()
}

/// Parses an RFC 3339 time that carries an offset (`Z` or `±HH:MM`), with or
/// without a fraction, into UTC milliseconds (a finer fraction is cut to the
/// millisecond). The instant must lie in UTC years 1970..=9999, so every
/// accepted time is between [`MIN_MS`] and [`MAX_MS`].
pub fn parse_time(s: &str) -> Result<Millis, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        "not a time of the form yyyy-MM-ddTHH:mm:ss.SSS+08:00 (an offset is required)".to_string()
    })?;
    let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
    if !(i128::from(MIN_MS)..=i128::from(MAX_MS)).contains(&ms) {
        return Err("year outside 1970..9999 (UTC)".into());
    }
    Ok(ms as Millis)
}

/// The local day `date` (`yyyy-MM-dd`) in `offset`, as UTC milliseconds:
/// its first millisecond and the first of the next day.
pub fn day_bounds(date: &str, offset: UtcOffset) -> Result<(Millis, Millis), String> {
    let fmt = format_description!("[year]-[month]-[day]");
    let day = (date.len() == 10)
        .then(|| time::Date::parse(date, fmt).ok())
        .flatten()
        .ok_or("not a date of the form yyyy-MM-dd")?;
    let next = day.next_day().ok_or("outside the years 1970..9999")?;
    let start = day.midnight().assume_offset(offset).unix_timestamp() * 1000;
    let end = next.midnight().assume_offset(offset).unix_timestamp() * 1000;
    if start < MIN_MS - 86_400_000 || end > MAX_MS + 86_400_001 {
        return Err("outside the years 1970..9999".into());
    }
    Ok((start, end))
}

/// Parses a UTC offset written `+08:00`, `-05:30` or `Z`.
pub fn parse_offset(s: &str) -> Result<UtcOffset, String> {
    if s == "Z" || s == "+00:00" || s == "-00:00" {
        return Ok(UtcOffset::UTC);
    }
    let bad = || format!("utc_offset: {s:?} is not of the form +08:00");
    let bytes = s.as_bytes();
    if !s.is_ascii() || bytes.len() != 6 || bytes[3] != b':' {
        return Err(bad());
    }
    let sign: i8 = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(bad()),
    };
    let h: i8 = s[1..3].parse().map_err(|_| bad())?;
    let m: i8 = s[4..6].parse().map_err(|_| bad())?;
    if h > 14 || m > 59 {
        return Err(bad());
    }
    UtcOffset::from_hms(sign * h, sign * m, 0).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cst() -> UtcOffset {
        parse_offset("+08:00").unwrap()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        #[test]
        fn millis_are_rendered_as_times_format_description_renders_them(
            ms in proptest::prop_oneof![
                proptest::prelude::any::<i64>(),
                MIN_MS - 100_000_000..MIN_MS + 100_000_000,
                MIN_MS..=MAX_MS,
                MAX_MS - 100_000_000..=MAX_MS + 100_000_000,
            ],
            h in -23i8..=23,
            m in 0i8..=59,
        ) {
            let m = if h < 0 { -m } else { m };
            let offset = UtcOffset::from_hms(h, m, 0).unwrap_or(UtcOffset::UTC);
            let by_hand = render_millis(ms, offset);
            let by_time = at(ms, offset).format(MILLIS_FORMAT).unwrap_or_default();
            proptest::prop_assert_eq!(by_hand, by_time);
        }
    }

    #[test]
    fn negative_offsets_under_an_hour_keep_their_sign() {
        let offset = UtcOffset::from_hms(0, -30, 0).unwrap();
        assert_eq!(render_millis(0, offset), "1969-12-31T23:30:00.000-00:30");
        assert_eq!(
            render_millis(1_595_222_975_120, UtcOffset::UTC),
            "2020-07-20T05:29:35.120+00:00"
        );
    }

    #[test]
    fn seed_time_round_trips() {
        let ms = parse_time("2020-07-20T13:29:35.120+08:00").unwrap();
        assert_eq!(ms, 1_595_222_975_120);
        assert_eq!(render_millis(ms, cst()), "2020-07-20T13:29:35.120+08:00");
    }

    #[test]
    fn renders_each_protocol_format() {
        let ms = parse_time("2024-11-07T08:10:29.999Z").unwrap();
        assert_eq!(
            render_rfc3339_seconds(ms, cst()),
            "2024-11-07T16:10:29+08:00"
        );
        assert_eq!(render_local(ms, cst()), "2024-11-07 16:10:29");
        assert_eq!(
            render_millis(ms, UtcOffset::UTC),
            "2024-11-07T08:10:29.999+00:00"
        );
    }

    #[test]
    fn a_time_without_offset_is_refused() {
        assert!(parse_time("2020-07-20T13:29:35.120").is_err());
        assert!(parse_time("2020-07-20 13:29:35").is_err());
        assert!(parse_time("").is_err());
    }

    #[test]
    fn the_edges_of_the_range_render_without_panicking() {
        let plus14 = parse_offset("+14:00").unwrap();
        assert_eq!(
            render_millis(MAX_MS, plus14),
            "9999-12-31T23:59:59.999+14:00"
        );
        assert_eq!(render_local(i64::MAX, cst()), "9999-12-31 23:59:59");
        assert_eq!(
            render_millis(MIN_MS, parse_offset("-05:00").unwrap()),
            "1969-12-31T19:00:00.000-05:00"
        );
        assert_eq!(parse_time("1969-12-31T19:00:00.000-05:00"), Ok(0));
        assert!(parse_time("1969-12-31T23:59:59.999Z").is_err());
        assert_eq!(parse_time("9999-12-31T23:59:59.999Z"), Ok(MAX_MS));
        assert!(parse_time("9999-12-31T23:59:59-01:00").is_err());
        let _ = render_rfc3339_seconds(i64::MIN, plus14);
    }

    #[test]
    fn a_local_day_is_its_24_hours_in_the_offset() {
        let (a, b) = day_bounds("2026-11-22", cst()).unwrap();
        assert_eq!(render_millis(a, cst()), "2026-11-22T00:00:00.000+08:00");
        assert_eq!(b - a, 86_400_000);
        assert_eq!(
            day_bounds("2026-11-22", UtcOffset::UTC).unwrap().0 - a,
            8 * 3_600_000
        );
        for bad in [
            "2026-11-31",
            "2026-1-05",
            "20261122",
            "2026-11-22 ",
            "",
            "9999-12-31",
            "2026-11-22T00:00",
        ] {
            assert!(day_bounds(bad, cst()).is_err(), "{bad}");
        }
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("Z").unwrap(), UtcOffset::UTC);
        assert_eq!(parse_offset("-05:30").unwrap().whole_minutes(), -330);
        assert!(parse_offset("+8").is_err());
        assert!(parse_offset("+25:00").is_err());
    }
}
