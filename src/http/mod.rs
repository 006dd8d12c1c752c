//! The responder: the only code that touches sockets. One thread runs an epoll readiness loop over
//! non-blocking sockets, so thousands of idle connections cost a small struct each, not a thread.
//!
//! Guarantees (see `ARCHITECTURE.md`): a fixed cap on open connections, reached by evicting the
//! oldest connection rather than refusing the newest; deadlines on the request head, on idle
//! keep-alive connections, on writes and on lingering closes; bounded memory per connection (a
//! partial head of at most [`codec::MAX_HEAD`] plus a capped output queue); accept errors such as
//! EMFILE are logged and survived. Request parsing and response framing live in [`codec`].

pub mod codec;
pub mod date;
mod sys;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use codec::{Handler, Request};

use crate::log::warning;

/// Timeouts and caps of the responder.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections held at once; at the cap the oldest are evicted.
    pub max_conns: usize,
    /// A started request head must be complete within this.
    pub head_timeout: Duration,
    /// A keep-alive connection with no request in progress is closed after this.
    pub idle_timeout: Duration,
    /// Queued output must be taken by the peer within this.
    pub write_timeout: Duration,
    /// After answering a request whose body was not read, keep discarding input this long.
    pub linger: Duration,
    /// Stop answering pipelined requests while this much output waits for the peer.
    pub max_out: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_conns: 16_384,
            head_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(5),
            linger: Duration::from_secs(2),
            max_out: 32 * 1024,
        }
    }
}

/// Lets another thread stop the loop after a grace period, and wake it at once.
pub struct Stopper {
    flag: AtomicBool,
    deadline: Mutex<Option<Instant>>,
    wake: sys::EventFd,
}

impl Stopper {
    /// Stops the loop once `grace` has passed; connections keep being answered until then.
    pub fn stop_after(&self, grace: Duration) {
        if let Ok(mut d) = self.deadline.lock() {
            d.get_or_insert(Instant::now() + grace);
        }
        self.wake.wake();
    }

    /// Whether the loop must end at `now`, and otherwise how long until it must.
    fn due(&self, now: Instant) -> (bool, Option<Duration>) {
        if self.flag.load(Ordering::SeqCst) {
            return (true, None);
        }
        match self.deadline.lock().ok().and_then(|d| *d) {
            Some(t) if t <= now => (true, None),
            Some(t) => (false, Some(t - now)),
            None => (false, None),
        }
    }
}

/// A bound listener, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    stopper: Arc<Stopper>,
    limits: Limits,
}

const LISTENER: u64 = u64::MAX;
const WAKER: u64 = u64::MAX - 1;
const READ_CHUNK: usize = 16 * 1024;
/// A connection younger than this is never evicted: it has not had its first read yet.
const EVICT_GRACE: Duration = Duration::from_millis(1);

impl Server {
    /// Binds `addr` (with a deep backlog, so a connection flood queues instead of being refused)
    /// and raises the open-files limit, capping connections below it.
    pub fn bind(addr: SocketAddr, mut limits: Limits) -> io::Result<Server> {
        let nofile = sys::raise_nofile_limit();
        // Keep a few descriptors for the listener, epoll, eventfd, stdio and the sources.
        let fit = nofile.saturating_sub(32).max(8) as usize;
        limits.max_conns = limits.max_conns.min(fit);
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        // Accepted sockets inherit TCP_NODELAY from the listener (Linux): one syscall per
        // connection saved.
        sys::set_nodelay(listener.as_raw_fd());
        // SAFETY: re-listening on a listening socket only changes its backlog.
        unsafe { libc::listen(listener.as_raw_fd(), 4096) };
        Ok(Server {
            listener,
            stopper: Arc::new(Stopper {
                flag: AtomicBool::new(false),
                deadline: Mutex::new(None),
                wake: sys::EventFd::new()?,
            }),
            limits,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn stopper(&self) -> Arc<Stopper> {
        Arc::clone(&self.stopper)
    }

    /// Serves until stopped. Returns only after [`Stopper::stop`] or if epoll itself cannot be
    /// created.
    pub fn run<H: Handler>(self, handler: &mut H) -> io::Result<()> {
        let epoll = sys::Epoll::new()?;
        epoll.add(self.listener.as_raw_fd(), sys::IN, LISTENER)?;
        epoll.add(self.stopper.wake.raw(), sys::IN, WAKER)?;
        let mut lp = Loop {
            epoll,
            listener: self.listener,
            limits: self.limits,
            conns: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            live: 0,
            scratch: vec![0; READ_CHUNK],
            body: Vec::with_capacity(1024),
            date: date::DateCache::default(),
            handler,
            now: Instant::now(),
            last_sweep: Instant::now(),
            paused_until: None,
            accept_errors: 0,
            last_accept_log: None,
        };
        let mut events = vec![sys::empty_event(); 256];
        loop {
            let (done, left) = self.stopper.due(Instant::now());
            if done {
                return Ok(());
            }
            let mut timeout = if lp.live > 0 || lp.paused_until.is_some() {
                250
            } else {
                -1
            };
            for left in [
                left,
                lp.paused_until
                    .map(|t| t.saturating_duration_since(Instant::now())),
            ]
            .into_iter()
            .flatten()
            {
                let ms = left.as_millis().min(250) as i32 + 1;
                timeout = if timeout < 0 { ms } else { timeout.min(ms) };
            }
            let n = lp.epoll.wait(&mut events, timeout);
            lp.now = Instant::now();
            lp.date.refresh();
            // Connections first, new ones last: an admission at the cap evicts the oldest, and a
            // connection admitted last round must get its read before it can be evicted.
            let mut accept = false;
            for ev in &events[..n] {
                let (token, flags) = (ev.u64, ev.events);
                match token {
                    LISTENER => accept = true,
                    WAKER => self.stopper.wake.drain(),
                    _ => lp.on_event(token, flags),
                }
            }
            if accept {
                lp.accept_all();
            }
            lp.resume();
            if lp.now.duration_since(lp.last_sweep) >= Duration::from_millis(250) {
                lp.sweep();
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (more of) a request head.
    Reading,
    /// Output queued that the peer has not taken yet; input is not read meanwhile.
    Writing,
    /// Answer sent and write side shut: discarding input until EOF or the deadline.
    Lingering,
}

struct Conn {
    fd: OwnedFd,
    /// Bytes of a request head not complete yet (or pipelined requests not answered yet).
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    phase: Phase,
    deadline: Instant,
    /// A head is in progress (its deadline is the head timeout, not the idle timeout).
    head_started: bool,
    /// Accept time, or the end of the last answered request: eviction takes the oldest first.
    since: Instant,
    close_after: bool,
    linger_after: bool,
    interest: u32,
    discarded: usize,
}

struct Loop<'h, H> {
    epoll: sys::Epoll,
    listener: TcpListener,
    limits: Limits,
    conns: Vec<Option<Conn>>,
    gens: Vec<u32>,
    free: Vec<usize>,
    live: usize,
    scratch: Vec<u8>,
    body: Vec<u8>,
    date: date::DateCache,
    handler: &'h mut H,
    now: Instant,
    last_sweep: Instant,
    paused_until: Option<Instant>,
    accept_errors: u64,
    last_accept_log: Option<Instant>,
}

impl<H: Handler> Loop<'_, H> {
    fn token(&self, idx: usize) -> u64 {
        (u64::from(self.gens[idx]) << 32) | idx as u64
    }

    fn accept_all(&mut self) {
        for _ in 0..256 {
            // At the cap, make room by evicting the oldest; if every connection is younger than
            // the grace (a flood), leave the rest queued for a moment so that a probe accepted
            // just before its request arrived gets read before it could be evicted.
            if self.live >= self.limits.max_conns && !self.evict_oldest() {
                self.pause(EVICT_GRACE);
                return;
            }
            match sys::accept(self.listener.as_raw_fd()) {
                Ok(fd) => self.admit(fd),
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => return,
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        self.accept_failed(&e);
                        return;
                    }
                    // ECONNABORTED, EPROTO, EINTR, network errors: that one connection is gone.
                    _ => continue,
                },
            }
        }
    }

    /// Out of descriptors or memory: free the oldest connections so the next probe gets in, or,
    /// with nothing to free, stop polling the listener for a moment instead of spinning on it.
    fn accept_failed(&mut self, e: &io::Error) {
        self.accept_errors += 1;
        let quiet = self
            .last_accept_log
            .is_some_and(|t| self.now.duration_since(t) < Duration::from_secs(10));
        if !quiet {
            warning!(
                "accept failed ({e}); {} so far; evicting the oldest connections and retrying",
                self.accept_errors
            );
            self.last_accept_log = Some(self.now);
        }
        if self.live > 0 {
            self.evict_oldest();
        } else {
            self.pause(Duration::from_millis(100));
        }
    }

    fn admit(&mut self, fd: OwnedFd) {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.gens.push(0);
                self.conns.len() - 1
            }
        };
        self.conns[idx] = Some(Conn {
            fd,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            phase: Phase::Reading,
            deadline: self.now + self.limits.head_timeout,
            head_started: true,
            since: self.now,
            close_after: false,
            linger_after: false,
            interest: 0,
            discarded: 0,
        });
        self.live += 1;
        // A probe's request is usually here already (it queued in the backlog): answer it now,
        // before later admissions from the same backlog can evict it as the oldest, unread. A
        // connection answered and closed here never costs an epoll registration.
        self.on_readable(idx);
        let token = self.token(idx);
        if self.conns[idx].as_ref().is_some_and(|c| c.interest == 0) {
            self.set_interest(idx, sys::IN | sys::RDHUP, token);
        }
    }

    fn close(&mut self, idx: usize) {
        if self.conns[idx].take().is_some() {
            self.gens[idx] = self.gens[idx].wrapping_add(1);
            self.free.push(idx);
            self.live -= 1;
        }
    }

    /// Closes the oldest sixteenth of the connections (at least one): one scan pays for many
    /// admissions while a flood holds the cap. Connections admitted or answered this round are
    /// spared (they have not had their chance yet); returns whether any was closed.
    /// Stops polling the listener for `d` (connections wait in the kernel's backlog meanwhile).
    fn pause(&mut self, d: Duration) {
        if self.paused_until.is_none() && self.epoll.delete(self.listener.as_raw_fd()).is_ok() {
            self.paused_until = Some(self.now + d);
        }
    }

    /// Polls the listener again once a pause is over.
    fn resume(&mut self) {
        if self.paused_until.is_some_and(|t| t <= self.now)
            && self
                .epoll
                .add(self.listener.as_raw_fd(), sys::IN, LISTENER)
                .is_ok()
        {
            self.paused_until = None;
        }
    }

    fn evict_oldest(&mut self) -> bool {
        let now = self.now;
        let mut ages: Vec<(Instant, usize)> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (c.since, i)))
            .filter(|&(since, _)| since + EVICT_GRACE <= now)
            .collect();
        let n = (self.live / 16).max(1).min(ages.len());
        if n == 0 {
            return false;
        }
        ages.select_nth_unstable(n - 1);
        for &(since, idx) in &ages[..n] {
            // One last read first: a probe whose request arrived after this round's wait is
            // answered, not evicted (costs one EAGAIN read for an idle connection).
            self.on_readable(idx);
            if self.conns[idx].as_ref().is_some_and(|c| c.since == since) {
                self.close(idx);
            }
        }
        true
    }

    fn on_event(&mut self, token: u64, flags: u32) {
        let idx = (token & 0xffff_ffff) as usize;
        if idx >= self.conns.len() || self.token(idx) != token || self.conns[idx].is_none() {
            return; // a connection closed earlier in this batch
        }
        if flags & sys::ERR != 0 && flags & sys::IN == 0 {
            self.close(idx);
            return;
        }
        let phase = self.conns[idx].as_ref().map(|c| c.phase);
        match phase {
            Some(Phase::Reading) if flags & (sys::IN | sys::RDHUP) != 0 => self.on_readable(idx),
            Some(Phase::Writing) if flags & sys::OUT != 0 => self.flush(idx),
            Some(Phase::Lingering) => self.discard(idx),
            _ => {}
        }
    }

    fn on_readable(&mut self, idx: usize) {
        let Loop {
            conns,
            scratch,
            body,
            date,
            handler,
            limits,
            now,
            ..
        } = self;
        let Some(c) = conns[idx].as_mut() else { return };
        let n = match sys::read(c.fd.as_raw_fd(), scratch) {
            Ok(0) => {
                // Peer closed its side: nothing more to answer.
                return self.close(idx);
            }
            Ok(n) => n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return;
            }
            Err(_) => return self.close(idx),
        };
        // Fast path: no carried bytes, answer straight from the read buffer.
        let p = if c.inbuf.is_empty() {
            let p = codec::answer(
                &scratch[..n],
                *handler,
                date.get(),
                body,
                &mut c.out,
                limits.max_out,
            );
            if !p.close && p.consumed < n {
                c.inbuf.extend_from_slice(&scratch[p.consumed..n]);
            }
            p
        } else {
            c.inbuf.extend_from_slice(&scratch[..n]);
            let p = codec::answer(
                &c.inbuf,
                *handler,
                date.get(),
                body,
                &mut c.out,
                limits.max_out,
            );
            c.inbuf.drain(..p.consumed);
            p
        };
        Self::after_answer(c, p, *now, limits);
        self.flush(idx);
    }

    /// Bookkeeping after answering: deadlines, eviction age, close and linger flags.
    fn after_answer(c: &mut Conn, p: codec::Progress, now: Instant, limits: &Limits) {
        if p.close {
            c.close_after = true;
            c.linger_after = p.linger;
            c.inbuf = Vec::new();
        }
        if p.answered > 0 {
            c.since = now;
            c.head_started = false;
            c.deadline = now + limits.idle_timeout;
        }
        if !c.inbuf.is_empty() && !c.head_started {
            c.head_started = true;
            c.deadline = now + limits.head_timeout;
        }
    }

    /// Sends queued output; then closes, lingers, waits for the peer, or answers carried requests.
    fn flush(&mut self, idx: usize) {
        loop {
            let Some(c) = self.conns[idx].as_mut() else {
                return;
            };
            while c.out_pos < c.out.len() {
                match sys::send(c.fd.as_raw_fd(), &c.out[c.out_pos..]) {
                    Ok(n) => c.out_pos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if c.phase != Phase::Writing {
                            c.phase = Phase::Writing;
                            c.deadline = self.now + self.limits.write_timeout;
                        }
                        let token = self.token(idx);
                        self.set_interest(idx, sys::OUT, token);
                        return;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return self.close(idx),
                }
            }
            c.out.clear();
            c.out_pos = 0;
            if c.out.capacity() > 4 * 1024 {
                c.out = Vec::new();
            }
            if c.close_after {
                if !c.linger_after {
                    return self.close(idx);
                }
                sys::shutdown_write(c.fd.as_raw_fd());
                c.phase = Phase::Lingering;
                c.deadline = self.now + self.limits.linger;
                let token = self.token(idx);
                return self.set_interest(idx, sys::IN | sys::RDHUP, token);
            }
            let was_writing = c.phase == Phase::Writing;
            c.phase = Phase::Reading;
            if was_writing {
                c.deadline = self.now + self.limits.idle_timeout;
                let token = self.token(idx);
                self.set_interest(idx, sys::IN | sys::RDHUP, token);
            }
            // Requests read earlier but held back by the output cap: answer them now.
            let Loop {
                conns,
                body,
                date,
                handler,
                limits,
                now,
                ..
            } = self;
            let Some(c) = conns[idx].as_mut() else { return };
            if c.inbuf.is_empty() {
                return;
            }
            let p = codec::answer(
                &c.inbuf,
                *handler,
                date.get(),
                body,
                &mut c.out,
                limits.max_out,
            );
            c.inbuf.drain(..p.consumed);
            Self::after_answer(c, p, *now, limits);
            if p.answered == 0 && !p.close {
                return;
            }
        }
    }

    fn set_interest(&mut self, idx: usize, interest: u32, token: u64) {
        let Some(c) = self.conns[idx].as_mut() else {
            return;
        };
        if c.interest != interest {
            // Interest 0: not registered yet (a connection is read once before it is).
            let registered = if c.interest == 0 {
                self.epoll.add(c.fd.as_raw_fd(), interest, token)
            } else {
                self.epoll.modify(c.fd.as_raw_fd(), interest, token)
            };
            c.interest = interest;
            if registered.is_err() {
                self.close(idx);
            }
        }
    }

    /// Lingering close: read and drop what the peer still sends, up to a bound.
    fn discard(&mut self, idx: usize) {
        let Some(c) = self.conns[idx].as_mut() else {
            return;
        };
        match sys::read(c.fd.as_raw_fd(), &mut self.scratch) {
            Ok(n) if n > 0 && c.discarded + n <= 1 << 20 => c.discarded += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            _ => self.close(idx),
        }
    }

    /// Closes connections whose deadline passed.
    fn sweep(&mut self) {
        self.last_sweep = self.now;
        for idx in 0..self.conns.len() {
            if self.conns[idx]
                .as_ref()
                .is_some_and(|c| c.deadline <= self.now)
            {
                self.close(idx);
            }
        }
    }
}
