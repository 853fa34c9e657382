//! The command line's mirrors of the admin API (`stock ...`, `coupon ...`,
//! `report`): plain HTTP requests to the running server, so the server stays
//! the only writer of its database. A refusal comes back as `CODE message`.

use std::time::Duration;

use serde_json::Value;

use crate::config::Config;

/// A client of one server's admin API.
pub struct AdminClient {
    base: String,
    token: String,
    agent: ureq::Agent,
}

/// Percent-encodes one path segment: everything but the unreserved characters.
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The address a client dials for a listen address: an unspecified host
/// (`0.0.0.0`, `[::]`) is reached on loopback.
pub fn dial_addr(listen: &str) -> String {
    if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = listen.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        listen.to_string()
    }
}

impl AdminClient {
    /// A client of `server` (`http://host:port` or `host:port`) with `token`.
    pub fn new(server: &str, token: &str) -> Result<AdminClient, String> {
        let server = server.trim().trim_end_matches('/');
        if server.is_empty() {
            return Err("--server: must not be empty".into());
        }
        if token.is_empty() {
            return Err("--token: must not be empty".into());
        }
        let base = if server.starts_with("http://") || server.starts_with("https://") {
            server.to_string()
        } else {
            format!("http://{server}")
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(3))
            .timeout_read(Duration::from_secs(60))
            .timeout_write(Duration::from_secs(10))
            .build();
        Ok(AdminClient {
            base,
            token: token.to_string(),
            agent,
        })
    }

    /// The server and token to use. The server: `--server`, else
    /// `admin_listen` (else `listen`) of `--config`. The token: `--token`,
    /// else the config's `admin_token`, else `COUPON_LEDGER_ADMIN_TOKEN`.
    pub fn resolve(
        server: Option<&str>,
        token: Option<&str>,
        config: Option<&std::path::Path>,
    ) -> Result<AdminClient, String> {
        let cfg = config.map(Config::from_file).transpose()?;
        let server = match (server, &cfg) {
            (Some(s), _) => s.to_string(),
            (None, Some(c)) => dial_addr(c.admin_listen.as_deref().unwrap_or(&c.listen)),
            (None, None) => {
                return Err(
                    "which server? pass --server URL (with --token), or --config FILE".into(),
                )
            }
        };
        let token = token
            .map(str::to_string)
            .or_else(|| cfg.map(|c| c.admin_token).filter(|t| !t.is_empty()))
            .or_else(|| std::env::var("COUPON_LEDGER_ADMIN_TOKEN").ok())
            .filter(|t| !t.is_empty())
            .ok_or("no admin token: pass --token (or set COUPON_LEDGER_ADMIN_TOKEN, or admin_token in --config)")?;
        AdminClient::new(&server, &token)
    }

    /// Sends one admin request and answers its body on success; a refusal
    /// (any status) is `CODE message` from its envelope.
    fn send(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<String, String> {
        let url = format!("{}{path}", self.base);
        let req = self
            .agent
            .request(method, &url)
            .set("Authorization", &format!("Bearer {}", self.token));
        let sent = match body {
            Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
            None => req.call(),
        };
        match sent {
            Ok(resp) => {
                // No size cap: a day's statement may be larger than ureq's
                // default limit for `into_string`.
                let mut text = String::new();
                std::io::Read::read_to_string(&mut resp.into_reader(), &mut text)
                    .map_err(|e| format!("reading the answer of {url}: {e}"))?;
                Ok(text)
            }
            Err(ureq::Error::Status(status, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                Err(refusal(&text).unwrap_or_else(|| format!("HTTP {status} from {url}")))
            }
            Err(e) => Err(format!("cannot reach the admin API at {}: {e}", self.base)),
        }
    }

    /// An admin call answering the envelope's `data`; a refusal (a non-zero
    /// `code`) is `CODE message`.
    pub fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Value, String> {
        let text = self.send(method, path, body)?;
        let v: Value =
            serde_json::from_str(&text).map_err(|_| format!("the answer of {path} is not JSON"))?;
        match v["code"].as_i64() {
            Some(0) => Ok(v["data"].clone()),
            _ => Err(refusal(&text).unwrap_or_else(|| format!("unexpected answer: {text}"))),
        }
    }

    /// An admin `GET` answering its body as text (the statement's CSV); a
    /// refusal (a JSON envelope instead) is `CODE message`.
    pub fn text(&self, path: &str) -> Result<String, String> {
        let text = self.send("GET", path, None)?;
        if text.starts_with('{') {
            if let Some(refused) = refusal(&text) {
                return Err(refused);
            }
        }
        Ok(text)
    }
}

/// `CODE message` from an envelope's text.
fn refusal(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    Some(format!(
        "{} {}",
        v["code"].as_i64()?,
        v["message"].as_str()?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_only_unreserved_characters() {
        assert_eq!(segment("demo-stock_1.x~"), "demo-stock_1.x~");
        assert_eq!(segment("批次 01/x"), "%E6%89%B9%E6%AC%A1%2001%2Fx");
    }

    #[test]
    fn unspecified_listen_hosts_are_dialled_on_loopback() {
        assert_eq!(dial_addr("0.0.0.0:8081"), "127.0.0.1:8081");
        assert_eq!(dial_addr("[::]:8081"), "[::1]:8081");
        assert_eq!(dial_addr("10.0.0.2:8081"), "10.0.0.2:8081");
    }

    #[test]
    fn refusals_read_the_envelope() {
        assert_eq!(
            refusal(r#"{"code":40402,"message":"coupon not found"}"#).as_deref(),
            Some("40402 coupon not found")
        );
        assert_eq!(refusal("not json"), None);
    }
}
