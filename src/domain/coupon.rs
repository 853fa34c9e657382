//! Coupon identities and personal data (docs/protocol.md, the ledger's rules).

/// A fresh coupon id: 19 decimal digits drawn uniformly from 10^18..10^19,
/// about 63 bits of randomness from the OS, so ids are neither guessable nor sequential.
pub fn new_coupon_id() -> Result<String, String> {
    const LOW: u64 = 1_000_000_000_000_000_000;
    const SPAN: u64 = 9 * LOW;
    // Rejection sampling keeps the draw uniform.
    let zone = u64::MAX - (u64::MAX % SPAN);
    loop {
        let mut buf = [0u8; 8];
        getrandom::getrandom(&mut buf).map_err(|e| format!("no randomness from the OS: {e}"))?;
        let r = u64::from_le_bytes(buf);
        if r < zone {
            return Ok((LOW + r % SPAN).to_string());
        }
    }
}

/// A random token of `n` bytes as lower-case hex (secrets, admin tokens, nonces).
pub fn random_hex(n: usize) -> Result<String, String> {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coupon_ids_are_19_digit_numbers_and_differ() {
        let a = new_coupon_id().unwrap();
        let b = new_coupon_id().unwrap();
        assert_eq!(a.len(), 19);
        assert!(a.bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(a, b);
    }
}
