//! The accept loop and the per-connection state machine.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::parse::{self, BodyKind, ChunkedDecoder, Head};
use super::{Handler, HttpError, Limits, Request, Response, TlsSource};

/// Stack of each connection thread: small, so a thousand connections are cheap.
const CONN_STACK_SIZE: usize = 256 * 1024;
/// Longest a single write to a client may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Write timeout for the 503 answer written by the accept thread itself.
const BUSY_WRITE_TIMEOUT: Duration = Duration::from_millis(100);
/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 8 * 1024;
/// After answering and before closing, how long (and how much) unread client
/// data is drained, so that closing does not reset the connection before
/// the client has read the answer.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_MAX_BYTES: usize = 1024 * 1024;
/// Bounded wait for in-flight requests in `shutdown` / `join`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// While stopping, how long a connection that has not sent its first
/// request yet is given to send it.
const FIRST_REQUEST_WHILE_STOPPING: Duration = Duration::from_secs(2);
/// Backoff after an accept error: starts here, doubles up to the max.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one "server busy" warning per this period.
const BUSY_WARN_EVERY: Duration = Duration::from_secs(10);

/// State shared by the accept thread, connection threads and the `Server`.
struct Shared {
    limits: Limits,
    handler: Handler,
    /// Set: this listener speaks HTTPS.
    tls: Option<Arc<TlsSource>>,
    local_addr: SocketAddr,
    stopping: AtomicBool,
    /// Live connection threads.
    active: AtomicUsize,
    /// Live connections, so that shutdown can close the idle ones.
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// The clock idle times are measured against.
    started: Instant,
}

struct Conn {
    stream: TcpStream,
    ip: IpAddr,
    /// True while waiting for the first byte of a request.
    idle: AtomicBool,
    /// True until its first request has been read: stopping never closes such
    /// a connection, whose request may already be on its way.
    fresh: AtomicBool,
    /// When it last became idle, in microseconds since `Shared::started`.
    idle_since: AtomicU64,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn micros(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Closes the connection idle the longest (from `ip` only, if given), to
    /// make room for a new one. False when no connection is idle.
    fn evict_idle(&self, ip: Option<IpAddr>) -> bool {
        let conns = self.conns.lock();
        let oldest = conns
            .values()
            .filter(|c| c.idle.load(Ordering::SeqCst) && ip.is_none_or(|ip| c.ip == ip))
            .min_by_key(|c| c.idle_since.load(Ordering::SeqCst));
        match oldest {
            Some(c) => {
                // Claim it so no other accept picks the same one.
                c.idle.store(false, Ordering::SeqCst);
                let _ = c.stream.shutdown(Shutdown::Both);
                true
            }
            None => false,
        }
    }

    /// Live connections from `ip`.
    fn connections_from(&self, ip: IpAddr) -> usize {
        self.conns.lock().values().filter(|c| c.ip == ip).count()
    }

    /// Sets the stop flag, wakes the accept thread and closes idle
    /// connections. Connections with a request under way finish it (and then
    /// close). Returns at once.
    fn trigger_stop(&self) {
        if !self.stopping.swap(true, Ordering::SeqCst) {
            log::info!("HTTP server on {} stopping", self.local_addr);
        }
        wake_accept(self.local_addr);
        let conns = self.conns.lock();
        for conn in conns.values() {
            if conn.idle.load(Ordering::SeqCst) && !conn.fresh.load(Ordering::SeqCst) {
                let _ = conn.stream.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A running HTTP server. Dropping it stops it (without waiting); use
/// [`Server::shutdown`] to stop and wait, or [`Server::join`] to block.
pub struct Server {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// Reads a server's number of open connections (see [`Server::connection_gauge`]).
/// It does not keep the server (nor its handler) alive: the handler may own
/// the gauge, and a strong reference would make a cycle.
#[derive(Clone)]
pub struct ConnectionGauge {
    shared: Weak<Shared>,
}

impl ConnectionGauge {
    /// Connections open now; 0 once the server is gone.
    pub fn open(&self) -> usize {
        self.shared
            .upgrade()
            .map_or(0, |s| s.active.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for ConnectionGauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionGauge")
            .field("open", &self.open())
            .finish()
    }
}

/// Stops a [`Server`] from another thread (e.g. while `join` blocks).
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Asks the server to stop: stops accepting, closes idle connections and
    /// lets requests under way finish. Returns at once.
    pub fn shutdown(&self) {
        self.shared.trigger_stop();
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("local_addr", &self.shared.local_addr)
            .finish()
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.shared.local_addr)
            .field("active_connections", &self.active_connections())
            .finish()
    }
}

impl Server {
    /// Binds and starts the accept thread; returns at once.
    pub fn start(addr: &str, limits: Limits, handler: Handler) -> io::Result<Server> {
        Server::serve(TcpListener::bind(addr)?, limits, handler)
    }

    /// Starts the accept thread on a listener bound earlier; returns at once.
    pub fn serve(listener: TcpListener, limits: Limits, handler: Handler) -> io::Result<Server> {
        Server::serve_tls(listener, limits, handler, None)
    }

    /// Like [`Server::serve`], speaking HTTPS when `tls` is given: each
    /// connection's handshake runs on its own thread, within the read timeout.
    pub fn serve_tls(
        listener: TcpListener,
        limits: Limits,
        handler: Handler,
        tls: Option<Arc<TlsSource>>,
    ) -> io::Result<Server> {
        let local_addr = listener.local_addr()?;
        let protocol = if tls.is_some() { "HTTPS" } else { "HTTP" };
        let shared = Arc::new(Shared {
            limits,
            handler,
            tls,
            local_addr,
            stopping: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            conns: Mutex::new(HashMap::new()),
            started: Instant::now(),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))?;
        log::info!("{protocol} server listening on {local_addr}");
        Ok(Server {
            shared,
            accept: Some(accept),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Number of live connections (connection threads).
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// A handle that reads [`Server::active_connections`] from anywhere, for
    /// metrics, without holding the server.
    pub fn connection_gauge(&self) -> ConnectionGauge {
        ConnectionGauge {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// Number of live connections waiting for their next request.
    pub fn idle_connections(&self) -> usize {
        self.shared
            .conns
            .lock()
            .values()
            .filter(|c| c.idle.load(Ordering::SeqCst))
            .count()
    }

    /// A handle that can stop this server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops accepting, lets in-flight requests finish (bounded wait), returns.
    /// When it returns the listening socket is closed.
    pub fn shutdown(self) {
        self.shutdown_within(SHUTDOWN_GRACE);
    }

    /// Like [`Server::shutdown`], waiting at most `grace` for requests under
    /// way. Connections already accepted (or waiting in the listen backlog)
    /// get their first request answered; idle keep-alive connections are closed.
    pub fn shutdown_within(mut self, grace: Duration) {
        self.shared.trigger_stop();
        let deadline = Instant::now() + grace;
        if let Some(accept) = self.accept.take() {
            let mut last_wake = Instant::now();
            while !accept.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
                if last_wake.elapsed() >= Duration::from_millis(200) {
                    // The first wake-up connection may have failed (e.g. no
                    // file descriptors): try again.
                    wake_accept(self.shared.local_addr);
                    last_wake = Instant::now();
                }
            }
            if accept.is_finished() {
                if accept.join().is_err() {
                    log::error!("HTTP accept thread panicked");
                }
            } else {
                log::warn!("HTTP accept thread did not stop in time");
            }
        }
        self.wait_for_connections(deadline);
    }

    /// Blocks until the server stops (through a [`ShutdownHandle`]), then
    /// waits (bounded) for in-flight requests.
    pub fn join(mut self) {
        if let Some(accept) = self.accept.take() {
            if accept.join().is_err() {
                log::error!("HTTP accept thread panicked");
            }
        }
        self.wait_for_connections(Instant::now() + SHUTDOWN_GRACE);
    }

    /// Whether a stop was asked for (through a [`ShutdownHandle`] or drop).
    pub fn stopping(&self) -> bool {
        self.shared.stopping()
    }

    fn wait_for_connections(&self, deadline: Instant) {
        while self.shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let left = self.shared.active.load(Ordering::SeqCst);
        if left > 0 {
            log::warn!("HTTP server stopped with {left} connection(s) still open");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.shared.trigger_stop();
        }
    }
}

/// Connects to the listener so that a blocked `accept` returns.
fn wake_accept(addr: SocketAddr) {
    let target = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    };
    if let Err(e) = TcpStream::connect_timeout(&target, Duration::from_millis(500)) {
        log::debug!("HTTP wake-up connection to {target} failed: {e}");
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut backoff = Duration::ZERO;
    let mut next_id: u64 = 0;
    let mut last_busy_warn: Option<Instant> = None;
    loop {
        if shared.stopping() {
            break;
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                backoff = Duration::ZERO;
                if shared.stopping() {
                    // Possibly a real client rather than the wake-up: serve it.
                    if !is_wake_up(&stream) {
                        let _ = stream.set_nonblocking(false);
                        next_id = next_id.wrapping_add(1);
                        let _ = start_connection(&shared, stream, peer, next_id);
                    }
                    break;
                }
                next_id = next_id.wrapping_add(1);
                if let Err(cap) = start_connection(&shared, stream, peer, next_id) {
                    if last_busy_warn.is_none_or(|t| t.elapsed() >= BUSY_WARN_EVERY) {
                        log::warn!("HTTP server busy: {cap}, answering 503");
                        last_busy_warn = Some(Instant::now());
                    }
                }
            }
            Err(e) => {
                if shared.stopping() {
                    break;
                }
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                backoff = if backoff.is_zero() {
                    ACCEPT_BACKOFF_MIN
                } else {
                    (backoff * 2).min(ACCEPT_BACKOFF_MAX)
                };
                log::warn!("HTTP accept failed: {e}; retrying in {backoff:?}");
                thread::sleep(backoff);
            }
        }
    }
    drain_backlog(&listener, &shared, &mut next_id);
    log::debug!("HTTP accept loop on {} ended", shared.local_addr);
    // The listener is dropped here, so the port stops accepting.
}

/// Accepts the connections the kernel already completed, so that closing the
/// listener does not reset clients whose request is already on its way. Each
/// is served one request, then closed.
fn drain_backlog(listener: &TcpListener, shared: &Arc<Shared>, next_id: &mut u64) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    for _ in 0..shared.limits.max_connections {
        match listener.accept() {
            Ok((stream, peer)) => {
                // The wake-up connections of `trigger_stop` carry no request.
                if is_wake_up(&stream) {
                    continue;
                }
                let _ = stream.set_nonblocking(false);
                *next_id = next_id.wrapping_add(1);
                let _ = start_connection(shared, stream, peer, *next_id);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// A connection that closed without sending anything (a wake-up connection).
fn is_wake_up(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let _ = stream.set_nonblocking(true);
    matches!(stream.peek(&mut byte), Ok(0))
}

/// Starts a connection thread, or answers 503 when at a connection cap (or
/// when no thread can be started); then `Err` says which cap.
fn start_connection(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
) -> Result<(), String> {
    let accepted = Instant::now();
    let ip = peer.ip();
    if shared.connections_from(ip) >= shared.limits.max_connections_per_ip
        && !shared.evict_idle(Some(ip))
    {
        log::debug!("HTTP {peer}: at the per-address cap, answering 503");
        log_rejected(peer, None, &HttpError::Busy, accepted);
        reject_busy(&stream);
        return Err(format!(
            "{} connections from {ip} (max_connections_per_ip)",
            shared.limits.max_connections_per_ip
        ));
    }
    let before = shared.active.fetch_add(1, Ordering::SeqCst);
    if before >= shared.limits.max_connections && !shared.evict_idle(None) {
        shared.active.fetch_sub(1, Ordering::SeqCst);
        log::debug!("HTTP {peer}: at connection cap, answering 503");
        log_rejected(peer, None, &HttpError::Busy, accepted);
        reject_busy(&stream);
        return Err(format!(
            "{} connections (max_connections)",
            shared.limits.max_connections
        ));
    }
    let conn = Arc::new(Conn {
        stream,
        ip,
        idle: AtomicBool::new(true),
        fresh: AtomicBool::new(true),
        idle_since: AtomicU64::new(shared.micros()),
    });
    shared.conns.lock().insert(id, Arc::clone(&conn));
    let thread_shared = Arc::clone(shared);
    let thread_conn = Arc::clone(&conn);
    let spawned = thread::Builder::new()
        .name("http-conn".into())
        .stack_size(CONN_STACK_SIZE)
        .spawn(move || {
            let _guard = ConnGuard {
                shared: Arc::clone(&thread_shared),
                id,
            };
            handle_connection(&thread_shared, &thread_conn, peer);
        });
    match spawned {
        Ok(_) => Ok(()),
        Err(e) => {
            log::warn!("HTTP {peer}: cannot start connection thread: {e}");
            shared.conns.lock().remove(&id);
            shared.active.fetch_sub(1, Ordering::SeqCst);
            log_rejected(peer, None, &HttpError::Busy, accepted);
            reject_busy(&conn.stream);
            Err(format!("cannot start a connection thread: {e}"))
        }
    }
}

/// Unregisters a connection and decrements the live count, even on panic.
struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.conns.lock().remove(&self.id);
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Written by the accept thread itself: must never block for long.
fn reject_busy(stream: &TcpStream) {
    let _ = stream.set_write_timeout(Some(BUSY_WRITE_TIMEOUT));
    let bytes = serialize_response(&HttpError::Busy.to_response(), false, ConnHeader::Close);
    let mut writer = stream;
    let _ = writer.write_all(&bytes);
    // Drain what the client already sent (without blocking) so the close
    // does not turn into a reset that discards our answer.
    if stream.set_nonblocking(true).is_ok() {
        let mut reader = stream;
        let mut scratch = [0u8; 1024];
        for _ in 0..16 {
            match reader.read(&mut scratch) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// Why reading a request stopped.
enum Fail {
    /// Answer this error, then close.
    Http(HttpError),
    /// The client went away (EOF, reset, write failure): close silently.
    Gone,
}

impl From<HttpError> for Fail {
    fn from(e: HttpError) -> Fail {
        Fail::Http(e)
    }
}

/// A connection's socket plus its read buffer (bytes received but not yet
/// consumed: the rest of a request, or pipelined requests).
struct ConnIo<'a> {
    stream: &'a TcpStream,
    /// The TLS session, on an HTTPS listener.
    tls: Option<rustls::ServerConnection>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl ConnIo<'_> {
    /// Reads more bytes into `buf`, waiting at most until `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), Fail> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Fail::Http(HttpError::Timeout));
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            if self.stream.set_read_timeout(Some(wait)).is_err() {
                return Err(Fail::Gone);
            }
            let mut sock = self.stream;
            let read = match self.tls.as_mut() {
                Some(tls) => rustls::Stream::new(tls, &mut sock).read(&mut self.scratch),
                None => sock.read(&mut self.scratch),
            };
            match read {
                Ok(0) => return Err(Fail::Gone),
                Ok(n) => {
                    self.buf.extend_from_slice(&self.scratch[..n]);
                    return Ok(());
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted
                    | io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut => continue,
                    _ => return Err(Fail::Gone),
                },
            }
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Fail> {
        let mut sock = self.stream;
        let written = match self.tls.as_mut() {
            Some(tls) => {
                let mut stream = rustls::Stream::new(tls, &mut sock);
                stream.write_all(bytes).and_then(|_| stream.flush())
            }
            None => sock.write_all(bytes),
        };
        written.map_err(|_| Fail::Gone)
    }

    /// Runs the TLS handshake (when there is one) until `deadline`; false
    /// when it failed or timed out (plain HTTP sent to an HTTPS port fails
    /// here), and the connection is closed.
    fn handshake(&mut self, deadline: Instant) -> bool {
        let Some(tls) = self.tls.as_mut() else {
            return true;
        };
        let mut sock = self.stream;
        while tls.is_handshaking() {
            let now = Instant::now();
            if now >= deadline || self.stream.set_read_timeout(Some(deadline - now)).is_err() {
                return false;
            }
            if let Err(e) = tls.complete_io(&mut sock) {
                match e.kind() {
                    io::ErrorKind::Interrupted
                    | io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut => continue,
                    _ => {
                        // Tell the client why when it can still read it (a TLS alert).
                        let _ = tls.write_tls(&mut sock);
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Half-closes, then drains (bounded) what the client still sends, so
    /// that it can read our last answer before the socket is closed.
    fn linger_close(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            let mut sock = self.stream;
            let _ = tls.write_tls(&mut sock);
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER_TIME;
        let mut drained = 0usize;
        while drained < LINGER_MAX_BYTES {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            if self.stream.set_read_timeout(Some(wait)).is_err() {
                break;
            }
            let mut reader = self.stream;
            match reader.read(&mut self.scratch) {
                Ok(0) => break,
                Ok(n) => drained += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn handle_connection(shared: &Shared, conn: &Conn, peer: SocketAddr) {
    let limits = &shared.limits;
    let _ = conn.stream.set_nodelay(true);
    if let Err(e) = conn.stream.set_write_timeout(Some(WRITE_TIMEOUT)) {
        log::debug!("HTTP {peer}: cannot set write timeout: {e}");
        return;
    }
    let tls = match &shared.tls {
        Some(source) => match rustls::ServerConnection::new(source.config()) {
            Ok(c) => Some(c),
            Err(e) => {
                log::warn!("HTTP {peer}: cannot start a TLS session: {e}");
                return;
            }
        },
        None => None,
    };
    let mut io = ConnIo {
        stream: &conn.stream,
        tls,
        buf: Vec::new(),
        scratch: vec![0u8; READ_CHUNK],
    };
    if !io.handshake(deadline_after(limits.read_timeout)) {
        log::debug!("HTTP {peer}: TLS handshake failed or timed out");
        let _ = conn.stream.shutdown(Shutdown::Both);
        return;
    }
    loop {
        if io.buf.is_empty() {
            // Idle: wait for the first byte of the next request.
            io.buf.shrink_to(READ_CHUNK);
            conn.idle_since.store(shared.micros(), Ordering::SeqCst);
            conn.idle.store(true, Ordering::SeqCst);
            let fresh = conn.fresh.load(Ordering::SeqCst);
            if shared.stopping() && !fresh {
                break;
            }
            let wait = if shared.stopping() {
                limits.idle_timeout.min(FIRST_REQUEST_WHILE_STOPPING)
            } else {
                limits.idle_timeout
            };
            if io.fill(deadline_after(wait)).is_err() {
                log::trace!("HTTP {peer}: idle connection closed");
                break;
            }
        }
        conn.idle.store(false, Ordering::SeqCst);
        conn.fresh.store(false, Ordering::SeqCst);
        let started = Instant::now();
        let deadline = deadline_after(limits.read_timeout);
        let (head, body) = match read_request(&mut io, limits, deadline) {
            Ok(request) => request,
            Err((Fail::Gone, _)) => break,
            Err((Fail::Http(err), head)) => {
                log::debug!("HTTP {peer}: rejecting request: {err}");
                let seen = head
                    .as_ref()
                    .map(|h| (h.method.as_str(), h.target.as_str()));
                log_rejected(peer, seen, &err, started);
                let bytes = serialize_response(&err.to_response(), false, ConnHeader::Close);
                if io.write_all(&bytes).is_ok() {
                    io.linger_close();
                }
                break;
            }
        };
        let client_close = parse::wants_close(head.minor, &head.headers);
        let minor = head.minor;
        let (path, query) = parse::split_target(&head.target);
        let request = Request {
            method: head.method,
            path,
            query,
            headers: head.headers,
            body,
            peer,
        };
        let response = call_handler(&shared.handler, &request);
        let handler_close = response.headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("connection")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
        });
        let close = client_close || handler_close || shared.stopping();
        let conn_header = if close {
            ConnHeader::Close
        } else if minor == 0 {
            ConnHeader::KeepAlive
        } else {
            ConnHeader::None
        };
        log::debug!(
            "HTTP {peer} {} {} -> {}",
            request.method,
            request.path,
            response.status
        );
        let bytes = serialize_response(&response, request.method == "HEAD", conn_header);
        drop(request);
        if io.write_all(&bytes).is_err() {
            break;
        }
        if close {
            io.linger_close();
            break;
        }
    }
}

/// `now + d`, saturating (a huge configured timeout must not panic).
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Reads one whole request (head and body) within `deadline`. A failure
/// carries the head when it was read, so the rejection can name the request.
fn read_request(
    io: &mut ConnIo<'_>,
    limits: &Limits,
    deadline: Instant,
) -> Result<(Head, Vec<u8>), (Fail, Option<Head>)> {
    let head = read_head(io, limits, deadline).map_err(|f| (f, None))?;
    match read_body(io, &head, limits, deadline) {
        Ok(body) => Ok((head, body)),
        Err(f) => Err((f, Some(head))),
    }
}

/// Reads and parses a request head within `deadline`.
fn read_head(io: &mut ConnIo<'_>, limits: &Limits, deadline: Instant) -> Result<Head, Fail> {
    let head = loop {
        if let Some(head) = parse::parse_head(&io.buf, limits.max_header_bytes)? {
            break head;
        }
        io.fill(deadline)?;
    };
    io.buf.drain(..head.len);
    Ok(head)
}

/// Reads the body `head` announces (within the body cap) by `deadline`.
fn read_body(
    io: &mut ConnIo<'_>,
    head: &Head,
    limits: &Limits,
    deadline: Instant,
) -> Result<Vec<u8>, Fail> {
    // Enforces the body cap from the declared length before reading anything.
    let kind = parse::body_kind(&head.headers, limits.max_body_bytes)?;
    if kind != BodyKind::Empty && parse::expects_continue(head.minor, &head.headers) {
        io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body = match kind {
        BodyKind::Empty => Vec::new(),
        BodyKind::Length(n) => {
            while io.buf.len() < n {
                io.fill(deadline)?;
            }
            let rest = io.buf.split_off(n);
            std::mem::replace(&mut io.buf, rest)
        }
        BodyKind::Chunked => {
            let mut decoder = ChunkedDecoder::new(limits.max_body_bytes, limits.max_header_bytes);
            loop {
                let used = decoder.feed(&io.buf)?;
                io.buf.drain(..used);
                if decoder.is_done() {
                    break decoder.into_body();
                }
                io.fill(deadline)?;
            }
        }
    };
    Ok(body)
}

/// Longest request path written in an access line.
const MAX_LOGGED_PATH: usize = 100;

/// The access line (target `access`, info) of a request this layer answered
/// itself (or whose handler panicked), in the shape of the application's own access lines, so that every
/// answer, even one that never reached the handler, is in the access log.
/// `seen` is the method and target when the head could be read; the query is
/// never logged.
fn log_rejected(peer: SocketAddr, seen: Option<(&str, &str)>, err: &HttpError, started: Instant) {
    if !log::log_enabled!(target: "access", log::Level::Info) {
        return;
    }
    let (method, target) = seen.unwrap_or(("-", "-"));
    let path: String = parse::split_target(target)
        .0
        .chars()
        .take(MAX_LOGGED_PATH)
        .collect();
    let micros = started.elapsed().as_micros();
    log::info!(
        target: "access",
        "{} {} status={} code={} ms={}.{:03} partner=- seq_id=- peer={peer}",
        method.escape_debug(),
        path.escape_debug(),
        err.status(),
        err.code(),
        micros / 1000,
        micros % 1000,
    );
}

/// Runs the handler, turning a panic or an invalid status into a 500.
fn call_handler(handler: &Handler, request: &Request) -> Response {
    let started = Instant::now();
    match catch_unwind(AssertUnwindSafe(|| handler(request))) {
        Ok(response) if (200..=599).contains(&response.status) => response,
        Ok(response) => {
            log::error!(
                "HTTP handler returned invalid status {} for {} {}",
                response.status,
                request.method,
                request.path
            );
            HttpError::Internal.to_response()
        }
        Err(payload) => {
            log::error!(
                "HTTP handler panicked on {} {}: {}",
                request.method,
                request.path,
                panic_message(payload.as_ref())
            );
            // The handler's own access line was lost with its stack.
            let seen = Some((request.method.as_str(), request.path.as_str()));
            log_rejected(request.peer, seen, &HttpError::Internal, started);
            HttpError::Internal.to_response()
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

/// Which `Connection` header the server adds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ConnHeader {
    None,
    Close,
    KeepAlive,
}

/// Serializes a response. `head_only` (HEAD requests) keeps Content-Length
/// but drops the body. Unsafe or framing-related extra headers are dropped.
fn serialize_response(response: &Response, head_only: bool, conn: ConnHeader) -> Vec<u8> {
    let status = response.status;
    let bodiless = status == 204 || status == 304 || (100..200).contains(&status);
    let mut head = format!("HTTP/1.1 {} {}\r\n", status, reason_phrase(status));
    if !response.content_type.is_empty() {
        if valid_header_value(&response.content_type) {
            head.push_str("Content-Type: ");
            head.push_str(&response.content_type);
            head.push_str("\r\n");
        } else {
            log::warn!("HTTP response Content-Type is invalid; dropped");
        }
    }
    if !bodiless {
        head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    for (name, value) in &response.headers {
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("connection")
        {
            continue;
        }
        if !valid_header_name(name) || !valid_header_value(value) {
            log::warn!("HTTP response header {name:?} is invalid; dropped");
            continue;
        }
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    match conn {
        ConnHeader::None => {}
        ConnHeader::Close => head.push_str("Connection: close\r\n"),
        ConnHeader::KeepAlive => head.push_str("Connection: keep-alive\r\n"),
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !head_only && !bodiless {
        out.extend_from_slice(&response.body);
    }
    out
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn valid_header_value(value: &str) -> bool {
    !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => match status / 100 {
            2 => "OK",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_and_without_body() {
        let r = Response::new(200, "text/plain", b"hi".to_vec())
            .with_header("X-A", "1")
            .with_header("Bad\r\nName", "x")
            .with_header("X-B", "evil\r\nInjected: 1")
            .with_header("Content-Length", "999");
        let s = String::from_utf8(serialize_response(&r, false, ConnHeader::Close)).unwrap();
        assert_eq!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nX-A: 1\r\nConnection: close\r\n\r\nhi"
        );
        let s = String::from_utf8(serialize_response(&r, true, ConnHeader::None)).unwrap();
        assert!(s.ends_with("Content-Length: 2\r\nX-A: 1\r\n\r\n"));
        let r = Response::new(204, "", b"ignored".to_vec());
        let s = String::from_utf8(serialize_response(&r, false, ConnHeader::KeepAlive)).unwrap();
        assert_eq!(
            s,
            "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn handler_panic_becomes_500() {
        let handler: Handler = Arc::new(|_req: &Request| -> Response { panic!("boom") });
        let req = Request {
            method: "GET".into(),
            path: "/".into(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
        };
        assert_eq!(call_handler(&handler, &req).status, 500);
        let handler: Handler = Arc::new(|_req: &Request| Response::new(42, "", Vec::new()));
        assert_eq!(call_handler(&handler, &req).status, 500);
    }
}
