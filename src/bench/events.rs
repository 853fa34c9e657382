//! The plain-HTTP load of `bench`: one thread per core, each driving its
//! share of the keep-alive connections through one readiness set (mio: epoll
//! on Linux), the way wrk does. Each connection has one request in flight at
//! a time, as before; what changed is that a burst of answers (a group commit
//! answers a whole batch of claims at once) is read by one thread that is
//! already awake, instead of waking one thread per connection. With a thread
//! per connection the client spent more CPU per claim than the server's own
//! HTTP side, on the cores the server needs.

use std::collections::VecDeque;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::TcpStream as StdStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::{build_ahead, cpu, next_request, outcome, parse_answer, read_answer, request};
use super::{Mode, Outcome};
use super::{Target, ThreadRun};

/// How long a connection waits for its answer once the row has ended, like
/// the threaded clients' read timeout: a request sent is always counted.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a broken connection waits before it connects again.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// One keep-alive connection and the request it has in flight.
struct Conn {
    /// Its number over the whole row: the requests' nonces and ids use it.
    worker: usize,
    stream: Option<TcpStream>,
    /// The number of the next request to build.
    n: u64,
    ahead: VecDeque<Vec<u8>>,
    out: Vec<u8>,
    written: usize,
    answer: Vec<u8>,
    sent_at: Instant,
    in_flight: bool,
    /// When a broken connection may try again.
    retry_at: Option<Instant>,
}

/// The connections of one load thread.
pub(super) struct Share {
    target: Target,
    mode: Mode,
    run: String,
    conns: Vec<Conn>,
    /// Made by [`Share::prepare`]; every connection is registered in it.
    poll: Option<Poll>,
    /// Why the share could not be prepared, if it could not.
    trouble: Option<String>,
}

/// Splits `connections` over `threads` shares, each connection with
/// `ahead` requests built (and signed) in advance.
pub(super) fn shares(
    target: &Target,
    mode: Mode,
    run: &str,
    connections: usize,
    threads: usize,
) -> Vec<Share> {
    let threads = threads.clamp(1, connections.max(1));
    let mut shares: Vec<Share> = (0..threads)
        .map(|_| Share {
            target: target.clone(),
            mode,
            run: run.to_string(),
            conns: Vec::new(),
            poll: None,
            trouble: None,
        })
        .collect();
    for worker in 0..connections {
        shares[worker % threads].conns.push(Conn {
            worker,
            stream: None,
            n: 0,
            ahead: VecDeque::new(),
            out: Vec::new(),
            written: 0,
            answer: Vec::with_capacity(1024),
            sent_at: Instant::now(),
            in_flight: false,
            retry_at: None,
        });
    }
    shares
}

impl Share {
    /// Before the clock starts: opens every connection of the share (each
    /// answers one `GET /livez`, so the server has accepted it; hundreds of
    /// connects at once inside the row overflowed the listen backlog, and
    /// the kernel's retry a second later showed as latency), and builds
    /// `each` requests ahead for each connection.
    pub(super) fn prepare(&mut self, each: u64) {
        let poll = match Poll::new() {
            Ok(poll) => poll,
            Err(e) => {
                self.trouble = Some(format!("cannot poll: {e}"));
                return;
            }
        };
        for (i, c) in self.conns.iter_mut().enumerate() {
            match connect(&self.target.addr, &poll, i, true) {
                Ok(stream) => c.stream = Some(stream),
                Err(why) => {
                    self.trouble.get_or_insert(why);
                }
            }
            if each > 0 {
                c.ahead = build_ahead(&self.target, self.mode, c.worker, &self.run, each);
            }
        }
        self.poll = Some(poll);
    }

    /// Drives the share until `stop`, then waits for the answers in flight.
    pub(super) fn drive(mut self, stop: &AtomicBool) -> ThreadRun {
        let cpu_at_start = cpu::thread_ns();
        let mut run = ThreadRun {
            first_io: self.trouble.take(),
            ..ThreadRun::default()
        };
        match self.poll.take() {
            Some(poll) => self.drive_with(poll, stop, &mut run),
            None => {
                *run.errors.entry("io".into()).or_default() += 1;
            }
        }
        run.cpu = cpu_at_start
            .zip(cpu::thread_ns())
            .map(|(a, b)| b.saturating_sub(a));
        run
    }

    fn drive_with(&mut self, mut poll: Poll, stop: &AtomicBool, run: &mut ThreadRun) {
        let mut events = Events::with_capacity(1024);
        for i in 0..self.conns.len() {
            self.send_next(i, &poll, run);
        }
        let mut stopped_at: Option<Instant> = None;
        loop {
            if stopped_at.is_none() && stop.load(Ordering::Relaxed) {
                stopped_at = Some(Instant::now());
            }
            if let Some(at) = stopped_at {
                let waiting = self.conns.iter().any(|c| c.in_flight);
                if !waiting || at.elapsed() > ANSWER_TIMEOUT {
                    return self.give_up(run);
                }
            }
            if let Err(e) = poll.poll(&mut events, Some(RECONNECT_PAUSE)) {
                if e.kind() != ErrorKind::Interrupted {
                    run.first_io.get_or_insert(format!("poll: {e}"));
                    return self.give_up(run);
                }
            }
            for ev in events.iter() {
                let i = ev.token().0;
                if i >= self.conns.len() {
                    continue;
                }
                if ev.is_writable() {
                    self.flush(i, &poll, run);
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.receive(i, &poll, stopped_at.is_none(), run);
                }
            }
            if stopped_at.is_none() {
                let now = Instant::now();
                for i in 0..self.conns.len() {
                    if self.conns[i].retry_at.is_some_and(|at| at <= now) {
                        self.conns[i].retry_at = None;
                        self.send_next(i, &poll, run);
                    }
                }
            }
        }
    }

    /// Counts every request still in flight as `io`: it was sent, and its
    /// answer will not be read.
    fn give_up(&mut self, run: &mut ThreadRun) {
        for c in self.conns.iter_mut().filter(|c| c.in_flight) {
            c.in_flight = false;
            run.lat.push(c.sent_at.elapsed().as_micros() as u64);
            *run.errors.entry("io".into()).or_default() += 1;
        }
    }

    /// Builds the connection's next request and starts writing it,
    /// connecting first when it has no connection.
    fn send_next(&mut self, i: usize, poll: &Poll, run: &mut ThreadRun) {
        let (target, mode, run_id) = (&self.target, self.mode, &self.run);
        let c = &mut self.conns[i];
        if c.stream.is_none() {
            match connect(&target.addr, poll, i, false) {
                Ok(stream) => c.stream = Some(stream),
                Err(why) => {
                    *run.errors.entry("io".into()).or_default() += 1;
                    run.first_io.get_or_insert(why);
                    c.retry_at = Some(Instant::now() + RECONNECT_PAUSE);
                    return;
                }
            }
        }
        let n = c.n;
        next_request(&mut c.out, &mut c.ahead, mode, || {
            request(target, mode, c.worker, n, run_id)
        });
        c.n += 1;
        c.written = 0;
        c.answer.clear();
        c.in_flight = true;
        c.sent_at = Instant::now();
        self.flush(i, poll, run);
    }

    /// Writes what the kernel takes of the request in flight.
    fn flush(&mut self, i: usize, poll: &Poll, run: &mut ThreadRun) {
        let c = &mut self.conns[i];
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        while c.in_flight && c.written < c.out.len() {
            match stream.write(&c.out[c.written..]) {
                Ok(0) => return self.broken(i, poll, run),
                Ok(k) => c.written += k,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.broken(i, poll, run),
            }
        }
    }

    /// Reads what arrived; a whole answer is counted and, unless the row
    /// has ended, followed by the next request.
    fn receive(&mut self, i: usize, poll: &Poll, go_on: bool, run: &mut ThreadRun) {
        let mode = self.mode;
        let c = &mut self.conns[i];
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return self.broken(i, poll, run),
                Ok(k) => c.answer.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.broken(i, poll, run),
            }
        }
        if !c.in_flight {
            return;
        }
        let Some(answer) = parse_answer(&c.answer) else {
            return;
        };
        c.in_flight = false;
        run.lat.push(c.sent_at.elapsed().as_micros() as u64);
        match outcome(mode, Ok(answer)) {
            Outcome::Ok => run.ok += 1,
            Outcome::Failed(k) => *run.errors.entry(k).or_default() += 1,
        }
        if go_on {
            self.send_next(i, poll, run);
        }
    }

    /// A connection that broke: its request in flight counts as `io`, and
    /// it connects again for the next one.
    fn broken(&mut self, i: usize, poll: &Poll, run: &mut ThreadRun) {
        let c = &mut self.conns[i];
        if let Some(mut stream) = c.stream.take() {
            let _ = poll.registry().deregister(&mut stream);
        }
        if c.in_flight {
            c.in_flight = false;
            run.lat.push(c.sent_at.elapsed().as_micros() as u64);
            *run.errors.entry("io".into()).or_default() += 1;
        }
        c.retry_at = Some(Instant::now() + RECONNECT_PAUSE);
    }
}

/// A connection to `addr`, made blocking (a refusal is known at once) and,
/// when `warm`, answered once for `GET /livez`, then registered for
/// readiness under token `i`.
fn connect(addr: &str, poll: &Poll, i: usize, warm: bool) -> Result<TcpStream, String> {
    let mut s = StdStream::connect(addr).map_err(|e| format!("connect to {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    if warm {
        let req = format!("GET /livez HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        let _ = s.set_read_timeout(Some(ANSWER_TIMEOUT));
        s.write_all(req.as_bytes())
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        read_answer(&mut BufReader::new(&s))
            .map_err(|err| format!("connect to {addr}: no answer to GET /livez: {err}"))?;
    }
    s.set_nonblocking(true)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let mut stream = TcpStream::from_std(s);
    poll.registry()
        .register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )
        .map_err(|e| format!("connect to {addr}: cannot poll: {e}"))?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_whole_only_with_its_body() {
        let whole = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 20\r\n\r\n{\"code\":40903,\"x\":1}";
        assert_eq!(parse_answer(&whole[..]), Some((200, Some(40903))));
        assert_eq!(parse_answer(&whole[..whole.len() - 2]), None);
        assert_eq!(parse_answer(&whole[..20]), None);
        let empty = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_answer(&empty[..]), Some((404, None)));
    }

    #[test]
    fn connections_are_spread_over_the_threads_with_their_own_numbers() {
        let t = crate::bench::tests::test_target();
        let s = shares(&t, Mode::Claim, "r", 5, 2);
        let workers: Vec<Vec<usize>> = s
            .iter()
            .map(|s| s.conns.iter().map(|c| c.worker).collect())
            .collect();
        assert_eq!(workers, [vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(shares(&t, Mode::Claim, "r", 1, 8).len(), 1);
    }
}
