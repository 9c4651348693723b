//! TCP proxies that count the round trips their clients make to a server, by
//! reading the bytes the clients send:
//!
//! - [`Pg`], for PostgreSQL's wire protocol (v3). A client waits for the
//!   server once per `Sync` (the end of an extended-protocol batch: `Parse`,
//!   `Bind`, `Describe`, `Execute`) and once per simple `Query`, so round
//!   trips = syncs + simple queries. A `Sync` with no extended message before
//!   it is a bare ping (sqlx sends one when a connection leaves the pool,
//!   `test_before_acquire`, and one when it goes back). The connection must
//!   not use TLS (`sslmode=disable`), or the messages cannot be read.
//! - [`Resp`], for Redis (RESP arrays): every top-level command is counted
//!   by name. Without pipelining (neither client pipelines one request's
//!   commands) each command is one round trip. Unlike `INFO commandstats`,
//!   this does not count the commands a script runs inside the server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads the client → server byte stream of one connection.
pub trait Feed: Default + Send + 'static {
    /// The counters, shared by all connections of one proxy.
    type Counts: Default + Send + Sync + 'static;
    /// Takes the next bytes the client sent.
    fn feed(&mut self, bytes: &[u8], counts: &Self::Counts);
}

/// Starts a proxy on a free local port; connections to it are forwarded to
/// `upstream`, and their client → server bytes read by a `P` each.
pub async fn start<P: Feed>(upstream: SocketAddr) -> std::io::Result<(SocketAddr, Arc<P::Counts>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let counts = Arc::new(P::Counts::default());
    let c = Arc::clone(&counts);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                if let Ok(up) = TcpStream::connect(upstream).await {
                    let _ = forward::<P>(client, up, c).await;
                }
            });
        }
    });
    Ok((addr, counts))
}

async fn forward<P: Feed>(client: TcpStream, up: TcpStream, counts: Arc<P::Counts>) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    up.set_nodelay(true)?;
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = up.into_split();
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut ur, &mut cw).await;
        let _ = cw.shutdown().await;
    });
    let mut parser = P::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = cr.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        uw.write_all(&buf[..n]).await?;
        parser.feed(&buf[..n], &counts);
    }
    let _ = uw.shutdown().await;
    let _ = back.await;
    Ok(())
}

// ---------------------------------------------------------------------------
// PostgreSQL

/// Counters of the PostgreSQL frontend messages seen on all connections.
#[derive(Debug, Default)]
pub struct PgCounts {
    syncs: AtomicU64,
    pings: AtomicU64,
    executes: AtomicU64,
    parses: AtomicU64,
    begins: AtomicU64,
    ends: AtomicU64,
    other_queries: AtomicU64,
}

/// A copy of [`PgCounts`] at one moment.
#[derive(Debug, Default, Clone, Copy)]
pub struct PgSnapshot {
    /// `Sync` messages (each ends one extended-protocol round trip).
    pub syncs: u64,
    /// `Sync` messages with no extended message since the previous one.
    pub pings: u64,
    /// `Execute` messages (statements run through the extended protocol).
    pub executes: u64,
    /// `Parse` messages (statements prepared).
    pub parses: u64,
    /// Simple `Query` messages that start with `BEGIN` or `START`.
    pub begins: u64,
    /// Simple `Query` messages that start with `COMMIT` or `ROLLBACK`.
    pub ends: u64,
    /// Other simple `Query` messages.
    pub other_queries: u64,
}

impl PgSnapshot {
    /// Round trips: every `Sync` and every simple query waits for the server.
    pub fn round_trips(&self) -> u64 {
        self.syncs + self.begins + self.ends + self.other_queries
    }

    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &PgSnapshot) -> PgSnapshot {
        PgSnapshot {
            syncs: self.syncs - earlier.syncs,
            pings: self.pings - earlier.pings,
            executes: self.executes - earlier.executes,
            parses: self.parses - earlier.parses,
            begins: self.begins - earlier.begins,
            ends: self.ends - earlier.ends,
            other_queries: self.other_queries - earlier.other_queries,
        }
    }
}

impl PgCounts {
    /// The current values.
    pub fn snapshot(&self) -> PgSnapshot {
        PgSnapshot {
            syncs: self.syncs.load(Relaxed),
            pings: self.pings.load(Relaxed),
            executes: self.executes.load(Relaxed),
            parses: self.parses.load(Relaxed),
            begins: self.begins.load(Relaxed),
            ends: self.ends.load(Relaxed),
            other_queries: self.other_queries.load(Relaxed),
        }
    }
}

/// The protocol's startup message code (version 3.0).
const PROTOCOL_3: u32 = 196_608;

/// The PostgreSQL reader of one connection.
#[derive(Default)]
pub struct Pg {
    pending: Vec<u8>,
    started: bool,
    extended_since_sync: bool,
}

impl Feed for Pg {
    type Counts = PgCounts;

    fn feed(&mut self, bytes: &[u8], counts: &PgCounts) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            let rest = &pending[at..];
            if !self.started {
                // Untyped messages: SSLRequest, GSSENCRequest, then the
                // StartupMessage (length, code).
                if rest.len() < 8 {
                    break;
                }
                let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if rest.len() < len {
                    break;
                }
                let code = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
                self.started = code == PROTOCOL_3;
                at += len.max(8);
                continue;
            }
            if rest.len() < 5 {
                break;
            }
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            if rest.len() < 1 + len {
                break;
            }
            self.count(rest[0], &rest[5..1 + len.max(4)], counts);
            at += 1 + len.max(4);
        }
        pending.drain(..at);
        self.pending = pending;
    }
}

impl Pg {
    fn count(&mut self, tag: u8, body: &[u8], counts: &PgCounts) {
        match tag {
            b'S' => {
                counts.syncs.fetch_add(1, Relaxed);
                if !self.extended_since_sync {
                    counts.pings.fetch_add(1, Relaxed);
                }
                self.extended_since_sync = false;
            }
            b'Q' => {
                let text = String::from_utf8_lossy(&body[..body.len().min(16)]).trim_start().to_ascii_uppercase();
                let c = if text.starts_with("BEGIN") || text.starts_with("START") {
                    &counts.begins
                } else if text.starts_with("COMMIT") || text.starts_with("ROLLBACK") {
                    &counts.ends
                } else {
                    &counts.other_queries
                };
                c.fetch_add(1, Relaxed);
            }
            b'E' => {
                counts.executes.fetch_add(1, Relaxed);
                self.extended_since_sync = true;
            }
            b'P' => {
                counts.parses.fetch_add(1, Relaxed);
                self.extended_since_sync = true;
            }
            b'B' | b'D' | b'C' | b'H' => self.extended_since_sync = true,
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// Redis

/// Top-level Redis commands seen on all connections, by lower-case name.
#[derive(Debug, Default)]
pub struct RespCounts(Mutex<BTreeMap<String, u64>>);

impl RespCounts {
    /// The current counts.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().expect("counts lock").clone()
    }
}

/// The RESP reader of one connection.
#[derive(Default)]
pub struct Resp {
    pending: Vec<u8>,
}

/// The line at the start of `b` (without `\r\n`) and the length with it.
fn line(b: &[u8]) -> Option<(&[u8], usize)> {
    let end = memchr_crlf(b)?;
    Some((&b[..end], end + 2))
}

fn memchr_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

fn number(b: &[u8]) -> Option<usize> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Parses one command (`*N` array of `$len` bulk strings, or an inline
/// command line) at the start of `b`: its name and its length in bytes.
fn command(b: &[u8]) -> Option<(String, usize)> {
    if b.first() != Some(&b'*') {
        let (l, n) = line(b)?;
        let name = String::from_utf8_lossy(l).split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        return Some((name, n));
    }
    let (head, mut at) = line(&b[1..]).map(|(l, n)| (l, n + 1))?;
    let parts = number(head)?;
    let mut name = String::new();
    for i in 0..parts {
        if b.get(at) != Some(&b'$') {
            return None;
        }
        let (l, n) = line(&b[at + 1..])?;
        let len = number(l)?;
        let start = at + 1 + n;
        if b.len() < start + len + 2 {
            return None;
        }
        if i == 0 {
            name = String::from_utf8_lossy(&b[start..start + len]).to_ascii_lowercase();
        }
        at = start + len + 2;
    }
    Some((name, at))
}

impl Feed for Resp {
    type Counts = RespCounts;

    fn feed(&mut self, bytes: &[u8], counts: &RespCounts) {
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        let mut seen = Vec::new();
        while let Some((name, n)) = command(&self.pending[at..]) {
            seen.push(name);
            at += n;
        }
        self.pending.drain(..at);
        if !seen.is_empty() {
            let mut map = counts.0.lock().expect("counts lock");
            for name in seen {
                *map.entry(name).or_default() += 1;
            }
        }
    }
}
