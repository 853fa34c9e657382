//! The voucher record: how third-party vouchers reach the ledger, one JSON
//! object each — in an array (`POST /admin/vouchers`) or one per line
//! (`coupon-ledger voucher import`). See docs/operations.md, voucher import.

use serde_json::{json, Value};

use super::fields::{parse_object, Fields, MAX_FEN, MAX_SHOP};
use crate::domain::voucher::{VoucherSpec, VoucherType};
use crate::domain::LedgerError;

/// Reads a voucher `type`: meituan, dianping, mtdz or tiktok.
pub fn voucher_type(f: &Fields) -> Result<VoucherType, LedgerError> {
    let t = f.str("type", 16)?;
    VoucherType::parse(&t).ok_or_else(|| {
        f.invalid(
            "type",
            &format!("{t:?} is not meituan, dianping, mtdz or tiktok"),
        )
    })
}

/// Reads one voucher record; errors are named `<prefix><field>`.
pub fn parse_voucher(f: &Fields) -> Result<VoucherSpec, LedgerError> {
    let kind = voucher_type(f)?;
    let coupon_no = f.str("couponNo", 64)?;
    let shop_ids = f.ints("shopIds", 0, MAX_SHOP)?;
    let coupon_name = f.str("couponName", 64)?;
    let value_fen = f.int("valueFen", 0, MAX_FEN)?;
    let price_fen = f.int("priceFen", 0, MAX_FEN)?;
    let coupon_type = f.opt_str("couponType", 32)?.unwrap_or_default();
    let count = f.int("count", 1, 1_000_000)?;
    let validity_begin = f.time("validityBegin")?;
    let validity_end = f.time("validityEnd")?;
    if validity_begin >= validity_end {
        return Err(f.invalid("validityEnd", "must be later than validityBegin"));
    }
    let templates = match f.get("templates") {
        None => json!([]),
        Some(Value::Array(items)) if items.iter().all(Value::is_object) => {
            Value::Array(items.clone())
        }
        Some(_) => return Err(f.invalid("templates", "must be an array of objects")),
    };
    let deal = f
        .opt_object("deal")?
        .ok_or_else(|| f.invalid("deal", "required"))?;
    if kind == VoucherType::Tiktok {
        deal.str("certificateId", 64)?;
        deal.opt_object("sku")?
            .ok_or_else(|| deal.invalid("sku", "required for tiktok"))?;
    }
    Ok(VoucherSpec {
        kind,
        coupon_no,
        shop_ids,
        coupon_name,
        value_fen,
        price_fen,
        coupon_type,
        count,
        validity_begin,
        validity_end,
        templates,
        deal: f.get("deal").cloned().unwrap_or(Value::Null),
    })
}

/// Parses an import: a JSON array of records, each validated with its index named.
pub fn parse_voucher_array(body: &[u8]) -> Result<Vec<VoucherSpec>, LedgerError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| LedgerError::NotJsonObject("body is not UTF-8".into()))?;
    let items = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(_) => {
            return Err(LedgerError::invalid(
                "body",
                "must be a JSON array of voucher records",
            ))
        }
        Err(e) => {
            return Err(LedgerError::NotJsonObject(format!(
                "body is not valid JSON: {e}"
            )))
        }
    };
    if items.is_empty() || items.len() > 10_000 {
        return Err(LedgerError::invalid("body", "must hold 1 to 10000 records"));
    }
    let mut specs: Vec<VoucherSpec> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(LedgerError::invalid(&format!("[{i}]"), "must be an object"));
        };
        let spec = parse_voucher(&Fields::with_prefix(m, &format!("[{i}].")))?;
        if let Some(j) = specs
            .iter()
            .position(|s| s.kind == spec.kind && s.coupon_no == spec.coupon_no)
        {
            return Err(LedgerError::invalid(
                &format!("[{i}].couponNo"),
                format!("repeats record [{j}]"),
            ));
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// Parses JSON lines, one record per line (blank lines skipped); an error
/// names the 1-based line.
pub fn parse_voucher_lines(text: &str) -> Result<Vec<VoucherSpec>, String> {
    let mut specs: Vec<VoucherSpec> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("line {}", i + 1);
        let map = parse_object(line.as_bytes()).map_err(|e| format!("{at}: {}", e.message()))?;
        let spec =
            parse_voucher(&Fields::new(&map)).map_err(|e| format!("{at}: {}", e.message()))?;
        if specs
            .iter()
            .any(|s| s.kind == spec.kind && s.coupon_no == spec.coupon_no)
        {
            return Err(format!("{at}: couponNo: repeats an earlier line"));
        }
        specs.push(spec);
    }
    Ok(specs)
}
