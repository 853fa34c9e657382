//! A small, self-contained, synchronous HTTP/1.1 server.
//!
//! Built to face an untrusted network: every allocation is bounded by
//! [`Limits`], every read has a deadline, accept errors (such as running out
//! of file descriptors) are survived, and a panicking handler costs one
//! `500` answer, not the process.
//!
//! Model: one accept thread plus one (small-stack) thread per connection,
//! capped at [`Limits::max_connections`]. Requests are parsed with
//! `httparse`; bodies may use `Content-Length` or `Transfer-Encoding:
//! chunked`. Keep-alive and pipelining are supported.
//!
//! Every error answer produced by this layer itself has a JSON body
//! `{"code": <int>, "message": <str>}`; see [`HttpError::to_response`].
//!
//! ```text
//! let handler: Handler = Arc::new(|req: &Request| {
//!     Response::json(200, &serde_json::json!({ "path": req.path }))
//! });
//! let server = Server::start("127.0.0.1:8080", Limits::default(), handler)?;
//! server.join(); // until a ShutdownHandle stops it
//! ```
//!
//! This module refers to no other module of its crate.

mod parse;
pub mod self_signed;
mod server;
mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use server::{ConnectionGauge, Server, ShutdownHandle};
pub use tls::{read_certs, TlsSource};

/// One parsed HTTP request.
#[derive(Clone)]
pub struct Request {
    /// The method as received: `"GET"`, `"POST"`, ...
    pub method: String,
    /// The path part of the request target, without the query. Percent-decoding
    /// is NOT applied. For an absolute-form target (`http://host/p`) this is
    /// the path (`/p`); for `OPTIONS *` it is `*`.
    pub path: String,
    /// The raw query string after `?`, `""` if none.
    pub query: String,
    /// Header fields in the order received, names as received.
    pub headers: Vec<(String, String)>,
    /// The request body (already de-chunked), at most `Limits::max_body_bytes`.
    pub body: Vec<u8>,
    /// The remote address of the connection.
    pub peer: SocketAddr,
}

impl Request {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The percent-decoded (`%XX` and `+`) value of the first query parameter
    /// named `name` (the name is compared after decoding). A parameter without
    /// `=` has the value `""`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .find_map(|pair| {
                let (k, v) = match pair.split_once('=') {
                    Some((k, v)) => (k, v),
                    None => (pair, ""),
                };
                if parse::percent_decode(k) == name {
                    Some(parse::percent_decode(v))
                } else {
                    None
                }
            })
    }

    /// Every query parameter in order, name and value percent-decoded (`%XX`
    /// and `+`); a parameter without `=` has the value `""`.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (parse::percent_decode(k), parse::percent_decode(v))
            })
            .collect()
    }

    /// The path's non-empty segments, each percent-decoded (`+` stays `+` in a path).
    pub fn path_segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| parse::percent_decode(&s.replace('+', "%2B")))
            .collect()
    }
}

/// Bodies are never printed: only their length.
impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("peer", &self.peer)
            .finish()
    }
}

/// One response produced by a [`Handler`].
///
/// The server adds `Content-Length` and, when it closes, `Connection: close`.
/// Extra headers named `Content-Length`, `Transfer-Encoding` or `Connection`
/// are not sent as given (a `Connection: close` from the handler makes the
/// server close after answering); headers with invalid names or with
/// CR/LF/NUL in their values are dropped with a warning.
#[derive(Clone)]
pub struct Response {
    /// Status code; outside `200..=599` the server answers 500 instead.
    pub status: u16,
    /// `Content-Type` header value; empty means no such header.
    pub content_type: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body (not sent for `HEAD` requests, 204 and 304).
    pub body: Vec<u8>,
}

impl Response {
    /// A response with the given status, content type and body.
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type: content_type.to_string(),
            headers: Vec::new(),
            body,
        }
    }

    /// A JSON response (`application/json; charset=utf-8`).
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        // Straight into bytes: `to_string` goes through `fmt::Display`, whose
        // adaptor cost an answer a tenth of its rendering. Serialising a
        // `Value` cannot fail (its keys are strings); the fallback is never used.
        let body = serde_json::to_vec(value).unwrap_or_else(|_| value.to_string().into_bytes());
        Response::new(status, "application/json; charset=utf-8", body)
    }

    /// Adds an extra header.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// Bodies are never printed: only their length.
impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// What the server calls for each request. Cheap to share across threads.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Resource limits of a [`Server`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line + headers); beyond it: 431 and close.
    /// Default 8 KiB. The trailer section of a chunked body has the same cap.
    pub max_header_bytes: usize,
    /// Largest request body; beyond it: 413 and close. Default 64 KiB.
    pub max_body_bytes: usize,
    /// Most live connections. At the cap a new connection takes the place of
    /// the connection idle the longest; when none is idle it gets 503 and is
    /// closed. Default 1024.
    pub max_connections: usize,
    /// Most live connections from one address, with the same rule. Default 256,
    /// so one client cannot take every slot.
    pub max_connections_per_ip: usize,
    /// Longest time to receive one whole request once its first byte
    /// arrived; beyond it: 408 and close. Default 10 s.
    pub read_timeout: Duration,
    /// A connection with no request under way for this long is closed
    /// silently. Default 60 s.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_header_bytes: 8 * 1024,
            max_body_bytes: 64 * 1024,
            max_connections: 1024,
            max_connections_per_ip: 256,
            read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// An error answered by the HTTP layer itself (never by a handler).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// 400: the request could not be parsed; the text says why.
    Malformed(String),
    /// 408: the request was not complete within `read_timeout`.
    Timeout,
    /// 413: the body exceeds the limit (in bytes) carried here.
    BodyTooLarge(usize),
    /// 431: the head (or chunked trailer) exceeds `max_header_bytes`, or has
    /// too many fields.
    HeadersTooLarge,
    /// 500: the handler panicked or produced an invalid response.
    Internal,
    /// 501: a feature (e.g. a transfer coding) is not implemented.
    NotImplemented(String),
    /// 503: `max_connections` reached.
    Busy,
    /// 505: HTTP version other than 1.0 / 1.1.
    VersionNotSupported,
}

impl HttpError {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.parts().0
    }

    /// The error code of the JSON answer (`40000`, `41300`, ...).
    pub fn code(&self) -> u32 {
        self.parts().1
    }

    /// The JSON error answer: `{"code": <int>, "message": <str>}`.
    pub fn to_response(&self) -> Response {
        let (status, code, message) = self.parts();
        Response::json(
            status,
            &serde_json::json!({ "code": code, "message": message }),
        )
    }

    /// The one place that maps layer errors to status, code and message.
    fn parts(&self) -> (u16, u32, String) {
        match self {
            HttpError::Malformed(why) => (400, 40000, format!("malformed HTTP request: {why}")),
            HttpError::Timeout => (408, 40800, "request timeout".to_string()),
            HttpError::BodyTooLarge(limit) => (
                413,
                41300,
                format!("body too large: limit is {limit} bytes"),
            ),
            HttpError::HeadersTooLarge => (431, 43100, "request headers too large".to_string()),
            HttpError::Internal => (500, 50000, "internal error".to_string()),
            HttpError::NotImplemented(what) => (501, 50100, format!("not implemented: {what}")),
            HttpError::Busy => (503, 50300, "server busy: too many connections".to_string()),
            HttpError::VersionNotSupported => {
                (505, 50500, "HTTP version not supported".to_string())
            }
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (status, _, message) = self.parts();
        write!(f, "{status} {message}")
    }
}

impl std::error::Error for HttpError {}
