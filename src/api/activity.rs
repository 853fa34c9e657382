//! `GET /admin/activity?days=N`: coupon journal events per hour and per day,
//! for the admin page's chart. Every bucket of the window is listed, with
//! zeros, so a client can draw it as it comes.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::domain::time::{now_ms, render_millis, Millis};
use crate::domain::LedgerError;
use crate::http::Request;
use crate::store::HourCount;

use super::App;

/// The journal events of a coupon, always present in each bucket.
pub const EVENTS: [&str; 5] = ["issue", "redeem", "unredeem", "expire", "deactivate"];
/// Most days one request may ask for.
pub const MAX_DAYS: i64 = 31;
const DEFAULT_DAYS: i64 = 7;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// `days`: 1 to [`MAX_DAYS`], default 7.
fn days(req: &Request) -> Result<i64, LedgerError> {
    match req.query_param("days").filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_DAYS),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_DAYS).contains(n))
            .ok_or_else(|| {
                LedgerError::invalid(
                    "days",
                    format!("must be an integer between 1 and {MAX_DAYS}"),
                )
            }),
    }
}

fn empty_bucket() -> BTreeMap<String, i64> {
    EVENTS.iter().map(|e| (e.to_string(), 0)).collect()
}

fn bucket_json(key: &str, label: String, counts: &BTreeMap<String, i64>) -> Value {
    let mut m = Map::new();
    m.insert(key.into(), json!(label));
    for (event, n) in counts {
        m.insert(event.clone(), json!(n));
    }
    Value::Object(m)
}

/// The window's buckets: the last `days` local days up to the current hour.
/// `since` is the start of the first local day; `now` ends the window.
pub fn buckets(
    rows: &[HourCount],
    since: Millis,
    now: Millis,
    tz: time::UtcOffset,
) -> (Vec<Value>, Vec<Value>) {
    let mut hours: BTreeMap<Millis, BTreeMap<String, i64>> = BTreeMap::new();
    let mut h = since;
    while h <= now {
        hours.insert(h, empty_bucket());
        h += HOUR_MS;
    }
    for r in rows {
        let bucket = hours.entry(r.hour_ms).or_insert_with(empty_bucket);
        *bucket.entry(r.event.clone()).or_insert(0) += r.count;
    }
    let mut days: BTreeMap<Millis, BTreeMap<String, i64>> = BTreeMap::new();
    for (hour, counts) in &hours {
        let day = since + (hour - since).div_euclid(DAY_MS) * DAY_MS;
        let d = days.entry(day).or_insert_with(empty_bucket);
        for (event, n) in counts {
            *d.entry(event.clone()).or_insert(0) += n;
        }
    }
    let hourly = hours
        .iter()
        .map(|(t, c)| bucket_json("time", render_millis(*t, tz), c))
        .collect();
    let daily = days
        .iter()
        .map(|(t, c)| {
            let date: String = render_millis(*t, tz).chars().take(10).collect();
            bucket_json("date", date, c)
        })
        .collect();
    (hourly, daily)
}

/// Answers the counts of the last `days` local days (today included).
pub fn handle(app: &App, req: &Request) -> Result<Value, LedgerError> {
    let days = days(req)?;
    let tz = app.config.utc_offset;
    let offset_ms = i64::from(tz.whole_seconds()) * 1000;
    let now = now_ms();
    let today = (now + offset_ms).div_euclid(DAY_MS) * DAY_MS - offset_ms;
    let since = today - (days - 1) * DAY_MS;
    let rows = app.store.coupon_activity(since, offset_ms)?;
    let (hourly, daily) = buckets(&rows, since, now, tz);
    Ok(json!({
        "days": days,
        "from_time": render_millis(since, tz),
        "to_time": render_millis(now, tz),
        "events": EVENTS,
        "hourly": hourly,
        "daily": daily,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hour_and_day_of_the_window_is_listed_with_the_counts_summed() {
        let tz = crate::domain::time::parse_offset("+08:00").unwrap_or(time::UtcOffset::UTC);
        let since = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS - 8 * HOUR_MS;
        let now = since + DAY_MS + 2 * HOUR_MS + 5;
        let rows = vec![
            HourCount {
                hour_ms: since,
                event: "issue".into(),
                count: 3,
            },
            HourCount {
                hour_ms: since + HOUR_MS,
                event: "redeem".into(),
                count: 1,
            },
            HourCount {
                hour_ms: since + DAY_MS,
                event: "expire".into(),
                count: 2,
            },
        ];
        let (hourly, daily) = buckets(&rows, since, now, tz);
        assert_eq!(hourly.len(), 24 + 3);
        assert_eq!(hourly[0]["issue"], 3);
        assert_eq!(hourly[0]["time"], render_millis(since, tz));
        assert!(hourly[0]["time"]
            .as_str()
            .unwrap_or("")
            .ends_with("T00:00:00.000+08:00"));
        assert_eq!(hourly[1]["redeem"], 1);
        assert_eq!(hourly[24]["expire"], 2);
        assert_eq!(daily.len(), 2);
        assert_eq!(daily[0]["issue"], 3);
        assert_eq!(daily[0]["redeem"], 1);
        assert_eq!(daily[1]["expire"], 2);
        assert_eq!(daily[1]["deactivate"], 0);
    }
}
