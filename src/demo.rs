//! The embedded default's demo partner and stock (docs/operations.md, configuration), kept in the
//! database's `meta` table so a restart on the same file finds them again.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::config::Partner;
use crate::domain::coupon::random_hex;
use crate::domain::ledger::{Origin, Source};
use crate::domain::stock::{CouponKind, StockDraft, StockSpec, StockStatus};
use crate::domain::time::now_ms;
use crate::domain::LedgerError;
use crate::sign::{self, SignRule};
use crate::store::Store;

/// The demo stock's id.
pub const DEMO_STOCK: &str = "demo-stock";
/// The `meta` key where the embedded default's server records the address it
/// actually listens on, for `demo-curl`.
pub const DEMO_LISTEN_KEY: &str = "demo_listen";
/// The `meta` key where it records the certificate a client must trust when
/// it serves HTTPS with `--tls-self-signed` (empty: plain HTTP), for `demo-curl`.
pub const DEMO_TLS_CA_KEY: &str = "demo_tls_ca";

/// The demo partner's `app_channel_id`.
pub const DEMO_CHANNEL: i64 = 1;

/// Demo credentials.
#[derive(Debug, Clone)]
pub struct Demo {
    pub api_key: String,
    pub secret: String,
    pub admin_token: String,
    /// What the in-process mock platform checks the ledger's sync calls with.
    pub platform_secret: String,
}

impl Demo {
    /// The demo partner as a config entry.
    pub fn partner(&self) -> Partner {
        Partner {
            api_key: self.api_key.clone(),
            secret: self.secret.clone(),
            name: "demo-partner".into(),
            sign: SignRule::default(),
            allow_ips: Vec::new(),
            rate: None,
        }
    }

    /// A freshly signed `curl` that claims a demo coupon against `addr`, over
    /// HTTPS trusting `ca` when one is given.
    pub fn claim_curl(&self, addr: &str, ca: Option<&Path>) -> Result<String, String> {
        let now = now_ms() / 1000;
        let nonce = random_hex(8)?;
        let mut body = Map::new();
        for (k, v) in [
            ("api_key", json!(self.api_key)),
            ("seq_id", json!(format!("demo-{nonce}"))),
            ("timestamp", json!(now.to_string())),
            ("nonce", json!(nonce)),
            ("app_channel_id", json!(DEMO_CHANNEL)),
            ("user_code", json!("demo-user")),
            ("stock_id", json!(DEMO_STOCK)),
            ("request_id", json!(format!("demo-{nonce}"))),
        ] {
            body.insert(k.into(), v);
        }
        let s = sign::sign(&body, &SignRule::default(), &self.secret);
        body.insert("sign".into(), Value::String(s));
        let base = match ca {
            Some(ca) => format!(
                "--cacert {} https://{addr}",
                shell_word(&ca.display().to_string())
            ),
            None => format!("http://{addr}"),
        };
        Ok(format!(
            "curl -s {base}/sp/coupon/receive -H 'Content-Type: application/json' -d '{}'",
            Value::Object(body)
        ))
    }
}

/// Creates the demo partner and running stock in a new database, or finds the
/// ones an earlier start created. `None` for a database not made by the default.
pub fn ensure(store: &Store) -> Result<Option<Demo>, LedgerError> {
    if let Some(found) = load(store)? {
        return Ok(Some(found));
    }
    if !store.is_empty()? {
        return Ok(None);
    }
    let demo = Demo {
        api_key: format!(
            "DEMO{}",
            random_hex(10)
                .map_err(LedgerError::Internal)?
                .to_uppercase()
        ),
        secret: random_hex(16).map_err(LedgerError::Internal)?,
        admin_token: random_hex(16).map_err(LedgerError::Internal)?,
        platform_secret: random_hex(16).map_err(LedgerError::Internal)?,
    };
    let now = now_ms();
    const DAY: i64 = 86_400_000;
    let spec = StockSpec::new(StockDraft {
        stock_id: DEMO_STOCK.into(),
        stock_name: "演示10元代金券".into(),
        app_channel_id: DEMO_CHANNEL,
        app_id: "wx1111111111".into(),
        instructions: "满100元减10元 (demo stock of the embedded default)".into(),
        coupon_name: "演示代金券".into(),
        coupon_desc: "消费满100元可用".into(),
        kind: CouponKind::FixedOff {
            amount: 1000,
            minimum: 10000,
        },
        max_coupons: 10000,
        max_coupons_per_user: 100,
        available_begin: now - DAY,
        available_end: now + 365 * DAY,
        status: StockStatus::Running,
    })?;
    store.set_meta(vec![
        ("demo_api_key".into(), demo.api_key.clone()),
        ("demo_secret".into(), demo.secret.clone()),
        ("demo_admin_token".into(), demo.admin_token.clone()),
        ("demo_platform_secret".into(), demo.platform_secret.clone()),
    ])?;
    store.create_stock(
        spec,
        Origin {
            source: Source::Admin,
            seq_id: Some("demo".into()),
            now,
            operator: None,
        },
    )?;
    Ok(Some(demo))
}

/// The demo credentials an earlier start stored, if any.
pub fn load(store: &Store) -> Result<Option<Demo>, LedgerError> {
    let found = (
        store.meta("demo_api_key")?,
        store.meta("demo_secret")?,
        store.meta("demo_admin_token")?,
        store.meta("demo_platform_secret")?,
    );
    Ok(match found {
        (Some(api_key), Some(secret), Some(admin_token), Some(platform_secret)) => Some(Demo {
            api_key,
            secret,
            admin_token,
            platform_secret,
        }),
        _ => None,
    })
}

/// The `[platform]` of the embedded default: the in-process mock at `addr`.
pub fn platform(demo: &Demo, addr: std::net::SocketAddr) -> crate::config::Platform {
    crate::config::Platform {
        base_url: format!("http://{addr}"),
        api_key: "demo-sp".into(),
        secret: demo.platform_secret.clone(),
        sign: SignRule::default(),
        max_attempts: 20,
        retry_base_ms: 1000,
        retry_max_ms: 60_000,
    }
}

/// `word` as one shell word, ready to paste: as it is when it holds nothing a
/// shell treats specially, else in single quotes.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn a_path_is_one_shell_word() {
        assert_eq!(
            shell_word("ledger.db.selfsigned.crt"),
            "ledger.db.selfsigned.crt"
        );
        assert_eq!(shell_word("/tmp/my dir/x.crt"), "'/tmp/my dir/x.crt'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
