//! The names of things, each parsed once at the edge: a value of one of these
//! types has passed its field's rule, and a phone number is masked.

use std::fmt;

use super::error::LedgerError;

/// A name with a field rule, read from the wire by its field name.
pub trait Name: Sized {
    /// The field's name on the wire.
    const FIELD: &'static str;
    /// Most characters the field may hold.
    const MAX_CHARS: usize;
    /// Checks the field's rule.
    fn parse(value: String) -> Result<Self, LedgerError>;
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl Name for $name {
            const FIELD: &'static str = $field;
            const MAX_CHARS: usize = $max;

            /// Checks the field's rule: 1 to `MAX_CHARS` characters.
            fn parse(value: String) -> Result<$name, LedgerError> {
                let n = value.chars().count();
                if n == 0 {
                    return Err(LedgerError::invalid($field, "must not be empty"));
                }
                if n > $max {
                    return Err(LedgerError::invalid(
                        $field,
                        format!("longer than {} characters", $max),
                    ));
                }
                Ok($name(value))
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                self.0.to_sql()
            }
        }
    };
}

name_type!(
    /// A stock's id (`stock_id`), at most 30 characters.
    StockId,
    "stock_id",
    30
);
name_type!(
    /// A coupon's id as a caller names it (`coupon_id`).
    CouponId,
    "coupon_id",
    32
);
name_type!(
    /// A user within an `app_channel_id` (`user_code`).
    UserCode,
    "user_code",
    32
);
name_type!(
    /// A claim's idempotency key (`request_id`).
    RequestId,
    "request_id",
    32
);

/// A phone number as the ledger keeps it: masked (`139****2222`). The full
/// number exists only while a request is read; this type is the only phone
/// the store sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedPhone(String);

impl MaskedPhone {
    /// Masks a phone number: `13911112222` → `139****2222`. Anything shorter
    /// than 8 characters is masked entirely.
    pub fn mask(phone: &str) -> MaskedPhone {
        let chars: Vec<char> = phone.chars().collect();
        if chars.len() < 8 {
            return MaskedPhone("*".repeat(chars.len()));
        }
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        MaskedPhone(format!("{head}****{tail}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl rusqlite::ToSql for MaskedPhone {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

/// Who may replay a claim's `request_id`: the operator, or one partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuer {
    Admin,
    Partner(String),
}

impl Issuer {
    /// How the ledger stores it: `admin` or `partner:<api_key>`.
    pub fn key(&self) -> String {
        match self {
            Issuer::Admin => "admin".into(),
            Issuer::Partner(api_key) => format!("partner:{api_key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_once() {
        assert!(StockId::parse("s".repeat(30)).is_ok());
        let e = StockId::parse("s".repeat(31)).unwrap_err();
        assert_eq!(e.message(), "stock_id: longer than 30 characters");
        assert!(UserCode::parse(String::new()).is_err());
        assert_eq!(StockId::parse("代驾".into()).unwrap(), *"代驾");
    }

    #[test]
    fn phones_are_masked() {
        assert_eq!(MaskedPhone::mask("13911112222").as_str(), "139****2222");
        assert_eq!(MaskedPhone::mask("1234").as_str(), "****");
    }

    #[test]
    fn issuers_have_their_stored_key() {
        assert_eq!(Issuer::Admin.key(), "admin");
        assert_eq!(Issuer::Partner("K".into()).key(), "partner:K");
    }
}
