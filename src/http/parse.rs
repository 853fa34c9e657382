//! Pure parsing helpers: request head, body framing, chunked decoding,
//! percent-decoding. No I/O here.

use super::HttpError;

/// Most header fields accepted in one request head; more -> 431.
pub(crate) const MAX_HEADERS: usize = 64;

/// Longest chunk-size line (size + extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// A parsed request head, owning its data.
#[derive(Debug)]
pub(crate) struct Head {
    pub method: String,
    pub target: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Vec<(String, String)>,
    /// Bytes of the head, including the final empty line.
    pub len: usize,
}

/// Parses the request head at the start of `buf`. `Ok(None)` means more bytes
/// are needed (and `buf` is still within `max_header_bytes`).
pub(crate) fn parse_head(buf: &[u8], max_header_bytes: usize) -> Result<Option<Head>, HttpError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            if buf.len() > max_header_bytes {
                Err(HttpError::HeadersTooLarge)
            } else {
                Ok(None)
            }
        }
        Ok(httparse::Status::Complete(len)) => {
            if len > max_header_bytes {
                return Err(HttpError::HeadersTooLarge);
            }
            let method = req.method.unwrap_or_default().to_string();
            let target = req.path.unwrap_or_default().to_string();
            let minor = match req.version {
                Some(v @ (0 | 1)) => v,
                _ => return Err(HttpError::VersionNotSupported),
            };
            if method.is_empty() || target.is_empty() {
                return Err(HttpError::Malformed("empty method or target".into()));
            }
            let headers = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            Ok(Some(Head {
                method,
                target,
                minor,
                headers,
                len,
            }))
        }
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::HeadersTooLarge),
        Err(httparse::Error::Version) => {
            // httparse reports any version other than 1.0/1.1 this way, but
            // also garbage where the version should be.
            if looks_like_http_version(buf) {
                Err(HttpError::VersionNotSupported)
            } else {
                Err(HttpError::Malformed("bad request line".into()))
            }
        }
        Err(e) => Err(HttpError::Malformed(parse_error_text(e).into())),
    }
}

/// Whether the request line ends in something shaped like `HTTP/d.d`.
fn looks_like_http_version(buf: &[u8]) -> bool {
    let line_end = buf
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(buf.len())
        .min(buf.len());
    let line = &buf[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.iter().rposition(|&b| b == b' ') {
        Some(sp) => {
            let v = &line[sp + 1..];
            v.len() == 8
                && v.starts_with(b"HTTP/")
                && v[5].is_ascii_digit()
                && v[6] == b'.'
                && v[7].is_ascii_digit()
        }
        None => false,
    }
}

fn parse_error_text(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token in request line",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// Splits a request target into (path, query). Absolute-form targets
/// (`http://host/p?q`) yield their path; a fragment, if any, is dropped.
pub(crate) fn split_target(target: &str) -> (String, String) {
    let mut rest = target;
    if let Some(pos) = rest.find("://") {
        if rest[..pos]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
            && !rest[..pos].is_empty()
        {
            let after = &rest[pos + 3..];
            rest = match after.find(['/', '?']) {
                Some(i) => &after[i..],
                None => "/",
            };
            if let Some(query) = rest.strip_prefix('?') {
                // "http://host?x" -> path "/" with query "x".
                return ("/".to_string(), strip_fragment(query).to_string());
            }
        }
    }
    let rest = strip_fragment(rest);
    match rest.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (rest.to_string(), String::new()),
    }
}

fn strip_fragment(s: &str) -> &str {
    match s.find('#') {
        Some(i) => &s[..i],
        None => s,
    }
}

/// How the body of a request is framed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// No body (no Content-Length, no Transfer-Encoding, or length 0).
    Empty,
    /// Exactly this many bytes (at most the body limit).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Works out the body framing from the headers, enforcing `max_body`
/// without allocating anything based on the declared length.
pub(crate) fn body_kind(
    headers: &[(String, String)],
    max_body: usize,
) -> Result<BodyKind, HttpError> {
    let mut length: Option<u64> = None;
    let mut codings: Vec<String> = Vec::new();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-length") {
            // A list of identical values ("5, 5") is tolerated (RFC 9110 8.6).
            for part in value.split(',') {
                let n = parse_content_length(part.trim())?;
                match length {
                    Some(prev) if prev != n => {
                        return Err(HttpError::Malformed(
                            "conflicting Content-Length values".into(),
                        ))
                    }
                    _ => length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            for coding in value.split(',') {
                let coding = coding.trim();
                if !coding.is_empty() {
                    codings.push(coding.to_ascii_lowercase());
                }
            }
        }
    }
    if !codings.is_empty() {
        if length.is_some() {
            return Err(HttpError::Malformed(
                "both Content-Length and Transfer-Encoding".into(),
            ));
        }
        if codings.len() == 1 && codings[0] == "chunked" {
            return Ok(BodyKind::Chunked);
        }
        if codings.last().map(String::as_str) != Some("chunked") {
            return Err(HttpError::Malformed(
                "Transfer-Encoding does not end in chunked".into(),
            ));
        }
        return Err(HttpError::NotImplemented(
            "transfer codings other than chunked".into(),
        ));
    }
    match length {
        None | Some(0) => Ok(BodyKind::Empty),
        Some(n) => {
            if n > max_body as u64 {
                return Err(HttpError::BodyTooLarge(max_body));
            }
            usize::try_from(n)
                .map(BodyKind::Length)
                .map_err(|_| HttpError::BodyTooLarge(max_body))
        }
    }
}

fn parse_content_length(s: &str) -> Result<u64, HttpError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::Malformed("invalid Content-Length".into()));
    }
    s.parse::<u64>()
        .map_err(|_| HttpError::Malformed("Content-Length overflows".into()))
}

/// Whether the connection must close after this request, from the
/// `Connection` header and the HTTP version.
pub(crate) fn wants_close(minor: u8, headers: &[(String, String)]) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    close || (minor == 0 && !keep_alive)
}

/// Whether the request carries `Expect: 100-continue` (HTTP/1.1 only; an
/// HTTP/1.0 expectation is ignored as RFC 9110 requires).
pub(crate) fn expects_continue(minor: u8, headers: &[(String, String)]) -> bool {
    minor >= 1
        && headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("expect") && v.trim().eq_ignore_ascii_case("100-continue")
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data; this many bytes remain.
    Data(usize),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Inside the trailer section (after the last chunk).
    Trailer,
    Done,
}

/// Incremental decoder for `Transfer-Encoding: chunked`, with a cap on the
/// decoded body and on the trailer section. Lines must end in CRLF.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: ChunkState,
    body: Vec<u8>,
    max_body: usize,
    trailer_bytes: usize,
    max_trailer: usize,
}

impl ChunkedDecoder {
    pub(crate) fn new(max_body: usize, max_trailer: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkState::Size,
            body: Vec::new(),
            max_body,
            trailer_bytes: 0,
            max_trailer,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    pub(crate) fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// Consumes as much of `input` as possible; returns the number of bytes
    /// consumed. Stops at the end of the message (see [`is_done`]) so that
    /// pipelined bytes after it are left alone.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<usize, HttpError> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                ChunkState::Done => return Ok(pos),
                ChunkState::Size => {
                    let Some(end) = find_crlf(rest, MAX_CHUNK_LINE) else {
                        if rest.len() > MAX_CHUNK_LINE {
                            return Err(HttpError::Malformed("chunk size line too long".into()));
                        }
                        return Ok(pos);
                    };
                    let size = parse_chunk_size(&rest[..end])?;
                    pos += end + 2;
                    if size == 0 {
                        self.state = ChunkState::Trailer;
                    } else {
                        let total = (self.body.len() as u64).saturating_add(size);
                        if total > self.max_body as u64 {
                            return Err(HttpError::BodyTooLarge(self.max_body));
                        }
                        // size <= max_body here, so this fits in usize.
                        let size = usize::try_from(size)
                            .map_err(|_| HttpError::BodyTooLarge(self.max_body))?;
                        self.state = ChunkState::Data(size);
                    }
                }
                ChunkState::Data(remaining) => {
                    if rest.is_empty() {
                        return Ok(pos);
                    }
                    let take = remaining.min(rest.len());
                    self.body.extend_from_slice(&rest[..take]);
                    pos += take;
                    self.state = if take == remaining {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(remaining - take)
                    };
                }
                ChunkState::DataEnd => {
                    if rest.len() < 2 {
                        if rest.first().is_some_and(|&b| b != b'\r') {
                            return Err(HttpError::Malformed("missing CRLF after chunk".into()));
                        }
                        return Ok(pos);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(HttpError::Malformed("missing CRLF after chunk".into()));
                    }
                    pos += 2;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    let budget = self.max_trailer.saturating_sub(self.trailer_bytes);
                    let Some(end) = find_crlf(rest, budget) else {
                        if rest.len() > budget {
                            return Err(HttpError::HeadersTooLarge);
                        }
                        return Ok(pos);
                    };
                    let line = &rest[..end];
                    if line.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
                        return Err(HttpError::Malformed("invalid trailer line".into()));
                    }
                    self.trailer_bytes += end + 2;
                    if self.trailer_bytes > self.max_trailer {
                        return Err(HttpError::HeadersTooLarge);
                    }
                    pos += end + 2;
                    if end == 0 {
                        self.state = ChunkState::Done;
                    }
                }
            }
        }
    }
}

/// Position of the first CRLF in `buf`, looking at most `limit + 2` bytes in.
fn find_crlf(buf: &[u8], limit: usize) -> Option<usize> {
    let window = &buf[..buf.len().min(limit.saturating_add(2))];
    window.windows(2).position(|w| w == b"\r\n")
}

/// Parses `1*HEXDIG [ BWS ";" chunk-ext ]`.
fn parse_chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    if line.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(HttpError::Malformed("invalid chunk size line".into()));
    }
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(HttpError::Malformed("invalid chunk size".into()));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        };
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(d)))
            .ok_or_else(|| HttpError::Malformed("chunk size overflows".into()))?;
    }
    let after = &line[digits..];
    let after_ws = after
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .map_or(&after[after.len()..], |i| &after[i..]);
    if !after_ws.is_empty() && after_ws[0] != b';' {
        return Err(HttpError::Malformed("invalid chunk size".into()));
    }
    Ok(size)
}

/// Decodes `%XX` escapes and `+` (as space); invalid escapes are kept as is.
/// Invalid UTF-8 is replaced with U+FFFD.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn head_parses_and_partial() {
        let raw = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\nrest";
        let head = parse_head(raw, 8192).unwrap().unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/a?b=1");
        assert_eq!(head.minor, 1);
        assert_eq!(head.len, raw.len() - 4);
        assert!(parse_head(b"GET / HTTP/1.1\r\nHo", 8192).unwrap().is_none());
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHo", 5).unwrap_err(),
            HttpError::HeadersTooLarge
        );
    }

    #[test]
    fn head_errors() {
        assert_eq!(
            parse_head(b"GET / HTTP/2.0\r\n\r\n", 8192).unwrap_err(),
            HttpError::VersionNotSupported
        );
        assert!(matches!(
            parse_head(b"GARBAGE\r\n\r\n", 8192).unwrap_err(),
            HttpError::Malformed(_)
        ));
        assert!(matches!(
            parse_head(b"GET / FOO\r\n\r\n", 8192).unwrap_err(),
            HttpError::Malformed(_)
        ));
    }

    #[test]
    fn targets() {
        assert_eq!(split_target("/a/b?x=1&y"), ("/a/b".into(), "x=1&y".into()));
        assert_eq!(split_target("/a"), ("/a".into(), "".into()));
        assert_eq!(split_target("/a#frag"), ("/a".into(), "".into()));
        assert_eq!(
            split_target("http://h:1/p?q=1"),
            ("/p".into(), "q=1".into())
        );
        assert_eq!(split_target("http://h"), ("/".into(), "".into()));
        assert_eq!(split_target("http://h?z"), ("/".into(), "z".into()));
        assert_eq!(split_target("*"), ("*".into(), "".into()));
    }

    #[test]
    fn framing() {
        assert_eq!(body_kind(&h(&[]), 10).unwrap(), BodyKind::Empty);
        assert_eq!(
            body_kind(&h(&[("Content-Length", "5")]), 10).unwrap(),
            BodyKind::Length(5)
        );
        assert_eq!(
            body_kind(&h(&[("content-length", "5, 5")]), 10).unwrap(),
            BodyKind::Length(5)
        );
        assert_eq!(
            body_kind(&h(&[("Content-Length", "11")]), 10).unwrap_err(),
            HttpError::BodyTooLarge(10)
        );
        assert_eq!(
            body_kind(&h(&[("Content-Length", "200000000000000000")]), 10).unwrap_err(),
            HttpError::BodyTooLarge(10)
        );
        for bad in ["", "abc", "-1", "+5", "1 2", "99999999999999999999999"] {
            assert!(matches!(
                body_kind(&h(&[("Content-Length", bad)]), 10).unwrap_err(),
                HttpError::Malformed(_)
            ));
        }
        assert!(matches!(
            body_kind(&h(&[("Content-Length", "1"), ("Content-Length", "2")]), 10).unwrap_err(),
            HttpError::Malformed(_)
        ));
        assert_eq!(
            body_kind(&h(&[("Transfer-Encoding", "Chunked")]), 10).unwrap(),
            BodyKind::Chunked
        );
        assert!(matches!(
            body_kind(
                &h(&[("Transfer-Encoding", "chunked"), ("Content-Length", "1")]),
                10
            )
            .unwrap_err(),
            HttpError::Malformed(_)
        ));
        assert!(matches!(
            body_kind(&h(&[("Transfer-Encoding", "gzip, chunked")]), 10).unwrap_err(),
            HttpError::NotImplemented(_)
        ));
        assert!(matches!(
            body_kind(&h(&[("Transfer-Encoding", "gzip")]), 10).unwrap_err(),
            HttpError::Malformed(_)
        ));
    }

    #[test]
    fn connection_semantics() {
        assert!(!wants_close(1, &h(&[])));
        assert!(wants_close(1, &h(&[("Connection", "Close")])));
        assert!(wants_close(0, &h(&[])));
        assert!(!wants_close(0, &h(&[("connection", "keep-alive")])));
        assert!(expects_continue(1, &h(&[("Expect", "100-Continue")])));
        assert!(!expects_continue(0, &h(&[("Expect", "100-continue")])));
    }

    #[test]
    fn chunked_whole_and_bytewise() {
        let raw = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut d = ChunkedDecoder::new(100, 100);
        let used = d.feed(raw).unwrap();
        assert!(d.is_done());
        assert_eq!(&raw[used..], b"NEXT");
        assert_eq!(d.into_body(), b"hello world");

        let mut d = ChunkedDecoder::new(100, 100);
        let mut buf = Vec::new();
        for &b in raw.iter() {
            buf.push(b);
            let used = d.feed(&buf).unwrap();
            buf.drain(..used);
            if d.is_done() {
                break;
            }
        }
        assert!(d.is_done());
        assert_eq!(d.into_body(), b"hello world");
    }

    #[test]
    fn chunked_errors() {
        let mut d = ChunkedDecoder::new(4, 100);
        assert_eq!(
            d.feed(b"5\r\nhello\r\n0\r\n\r\n").unwrap_err(),
            HttpError::BodyTooLarge(4)
        );
        let mut d = ChunkedDecoder::new(100, 100);
        assert_eq!(
            d.feed(b"1\r\na\r\nffffffffffffffff\r\n").unwrap_err(),
            HttpError::BodyTooLarge(100)
        );
        let mut d = ChunkedDecoder::new(100, 100);
        assert!(d.feed(b"zz\r\n").is_err());
        let mut d = ChunkedDecoder::new(100, 100);
        assert!(d.feed(b"ffffffffffffffffffff\r\n").is_err());
        let mut d = ChunkedDecoder::new(100, 100);
        assert!(d.feed(b"1\r\naXY").is_err());
        let mut d = ChunkedDecoder::new(100, 100);
        assert!(d.feed(&[b'1'; 5000]).is_err());
        let mut d = ChunkedDecoder::new(100, 10);
        assert_eq!(
            d.feed(b"0\r\nX-Long-Trailer: 1234567890\r\n\r\n")
                .unwrap_err(),
            HttpError::HeadersTooLarge
        );
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a+b%20c%2Fd"), "a b c/d");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }
}
