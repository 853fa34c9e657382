//! Money: integer fen only, rendered as yuan from its digits. No float touches money.

/// An amount of money in fen (分). Never negative inside the ledger.
pub type Fen = i64;

/// Renders fen as a yuan string without trailing zeros: 10 → "0.1", 1000 → "10", 1234 → "12.34".
pub fn yuan(fen: Fen) -> String {
    yuan_wide(i128::from(fen))
}

/// [`yuan`] of a sum of amounts, which may exceed the range of one [`Fen`].
pub fn yuan_wide(fen: i128) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    let (whole, cents) = (abs / 100, abs % 100);
    match cents {
        0 => format!("{sign}{whole}"),
        c if c % 10 == 0 => format!("{sign}{whole}.{}", c / 10),
        c => format!("{sign}{whole}.{c:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_has_no_trailing_zeros() {
        assert_eq!(yuan(10), "0.1");
        assert_eq!(yuan(1000), "10");
        assert_eq!(yuan(1234), "12.34");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(0), "0");
        assert_eq!(yuan(100_000_000_001), "1000000000.01");
        assert_eq!(yuan(-1999), "-19.99");
        assert_eq!(yuan_wide(2 * i128::from(i64::MAX)), "184467440737095516.14");
    }
}
