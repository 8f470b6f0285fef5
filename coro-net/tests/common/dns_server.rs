//! A tiny authoritative DNS server for tests and benches, on 127.0.0.1
//! (std sockets, one thread for UDP, one for TCP accepts, one per TCP
//! connection). Wire format by hand, for the few records below.
//!
//! Zone `coro.test` (every TTL is 0, so nothing is cached, but for
//! `ttl.coro.test`'s hour):
//!
//! | name | answer |
//! |---|---|
//! | `a.coro.test` | A 192.0.2.1, 192.0.2.2 |
//! | `ttl.coro.test` | A 192.0.2.9, TTL 3600 |
//! | `v6.coro.test` | AAAA 2001:db8::6 |
//! | `both.coro.test` | A 192.0.2.3, AAAA 2001:db8::3 |
//! | `h<N>.coro.test` | A 198.18.0.0 + N (N < 131072) |
//! | `noaddr.coro.test` | NOERROR, no records |
//! | `servfail.coro.test` | SERVFAIL |
//! | `refused.coro.test` | REFUSED |
//! | `big.coro.test` | 40 A records 192.0.2.100..; over UDP only a truncated (TC) empty answer |
//! | `1.2.0.192.in-addr.arpa` | PTR a.coro.test |
//! | `2.2.0.192.in-addr.arpa` | PTR a.coro.test, PTR alias.coro.test |
//! | `6.0...8.b.d.0.1.0.0.2.ip6.arpa` | PTR v6.coro.test |
//! | anything else | NXDOMAIN |
//!
//! A [`DnsServer::silent`] server reads queries and never answers.
#![allow(dead_code, unreachable_pub)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

const NOERROR: u16 = 0;
const SERVFAIL: u16 = 2;
const NXDOMAIN: u16 = 3;
const REFUSED: u16 = 5;

/// Queries seen, with a way to wait for a count.
#[derive(Default)]
pub struct Stats {
    udp: AtomicUsize,
    tcp: AtomicUsize,
    seen: Mutex<usize>,
    cv: Condvar,
}

impl Stats {
    fn count(&self, tcp: bool) {
        if tcp {
            self.tcp.fetch_add(1, Ordering::SeqCst);
        } else {
            self.udp.fetch_add(1, Ordering::SeqCst);
        }
        *self.seen.lock().unwrap() += 1;
        self.cv.notify_all();
    }
}

/// A running server; stopped (threads joined) on drop.
pub struct DnsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// The answering server (UDP and TCP on the same port).
    pub fn start() -> DnsServer {
        DnsServer::spawn(true)
    }

    /// A server that reads queries and never answers.
    pub fn silent() -> DnsServer {
        DnsServer::spawn(false)
    }

    fn spawn(answer: bool) -> DnsServer {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let mut threads = Vec::new();
        {
            let (stop, stats) = (stop.clone(), stats.clone());
            threads.push(thread::spawn(move || serve_udp(udp, answer, &stop, &stats)));
        }
        {
            let (stop, stats) = (stop.clone(), stats.clone());
            threads.push(thread::spawn(move || serve_tcp(tcp, answer, &stop, &stats)));
        }
        DnsServer {
            addr,
            stop,
            stats,
            threads,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn udp_queries(&self) -> usize {
        self.stats.udp.load(Ordering::SeqCst)
    }

    pub fn tcp_queries(&self) -> usize {
        self.stats.tcp.load(Ordering::SeqCst)
    }

    pub fn queries(&self) -> usize {
        self.udp_queries() + self.tcp_queries()
    }

    /// Block until at least `n` queries arrived (UDP + TCP) or `bound`
    /// passed; returns the count.
    pub fn wait_queries(&self, n: usize, bound: Duration) -> usize {
        let deadline = Instant::now() + bound;
        let mut seen = self.stats.seen.lock().unwrap();
        while *seen < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            seen = self.stats.cv.wait_timeout(seen, left).unwrap().0;
        }
        *seen
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking recv and accept.
        if let Ok(s) = UdpSocket::bind("127.0.0.1:0") {
            let _ = s.send_to(&[0], self.addr);
        }
        let _ = TcpStream::connect(self.addr);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// UDP and TCP sockets on the same free port of 127.0.0.1.
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..64 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            return (udp, tcp);
        }
    }
    panic!("no free port for both UDP and TCP on 127.0.0.1");
}

fn serve_udp(sock: UdpSocket, answer: bool, stop: &AtomicBool, stats: &Stats) {
    let mut buf = [0u8; 4096];
    loop {
        let r = sock.recv_from(&mut buf);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok((n, peer)) = r else { continue };
        if n < 12 {
            continue;
        }
        stats.count(false);
        if !answer {
            continue;
        }
        if let Some(resp) = respond(&buf[..n], false) {
            let _ = sock.send_to(&resp, peer);
        }
    }
}

fn serve_tcp(listener: TcpListener, answer: bool, stop: &Arc<AtomicBool>, stats: &Arc<Stats>) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let (stop, stats) = (stop.clone(), stats.clone());
        // Detached: ends when the client closes, or after 5 s idle.
        thread::spawn(move || {
            let _ = serve_conn(conn, answer, &stop, &stats);
        });
    }
}

fn serve_conn(mut c: TcpStream, answer: bool, stop: &AtomicBool, stats: &Stats) -> io::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    loop {
        let mut len = [0u8; 2];
        c.read_exact(&mut len)?;
        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
        c.read_exact(&mut q)?;
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        stats.count(true);
        if !answer {
            continue;
        }
        if let Some(resp) = respond(&q, true) {
            let mut out = (resp.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&resp);
            c.write_all(&out)?;
        }
    }
}

/// The question: lower-cased name (no trailing dot), type, and the end of
/// the question section.
fn parse_question(q: &[u8]) -> Option<(String, u16, usize)> {
    if q.len() < 12 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // no compression in questions
        }
        let label = q.get(i..i + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*q.get(i + 2)?, *q.get(i + 3)?]);
    if qclass != CLASS_IN {
        return None;
    }
    Some((labels.join("."), qtype, i + 4))
}

enum Rdata {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ptr(&'static str),
}

fn encode_name(name: &str, out: &mut Vec<u8>) {
    for l in name.split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
}

fn ptr_v6(ip: Ipv6Addr) -> String {
    let mut s = String::new();
    for b in ip.octets().iter().rev() {
        s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
    }
    s + "ip6.arpa"
}

/// rcode and records for (name, type); `None`: truncate over UDP.
fn lookup(name: &str, qtype: u16, tcp: bool) -> Option<(u16, Vec<Rdata>)> {
    let v4 = |a: [u8; 4]| Rdata::A(Ipv4Addr::from(a));
    let only = |t: u16, r: Vec<Rdata>| if qtype == t { r } else { Vec::new() };
    let rec = match name {
        "a.coro.test" => only(TYPE_A, vec![v4([192, 0, 2, 1]), v4([192, 0, 2, 2])]),
        "ttl.coro.test" => only(TYPE_A, vec![v4([192, 0, 2, 9])]),
        "v6.coro.test" => only(TYPE_AAAA, vec![Rdata::Aaaa("2001:db8::6".parse().unwrap())]),
        "both.coro.test" => match qtype {
            TYPE_A => vec![v4([192, 0, 2, 3])],
            TYPE_AAAA => vec![Rdata::Aaaa("2001:db8::3".parse().unwrap())],
            _ => Vec::new(),
        },
        "noaddr.coro.test" => Vec::new(),
        "servfail.coro.test" => return Some((SERVFAIL, Vec::new())),
        "refused.coro.test" => return Some((REFUSED, Vec::new())),
        "big.coro.test" => {
            if !tcp {
                return None;
            }
            only(TYPE_A, (0..40).map(|i| v4([192, 0, 2, 100 + i])).collect())
        }
        "1.2.0.192.in-addr.arpa" => only(TYPE_PTR, vec![Rdata::Ptr("a.coro.test")]),
        "2.2.0.192.in-addr.arpa" => only(
            TYPE_PTR,
            vec![Rdata::Ptr("a.coro.test"), Rdata::Ptr("alias.coro.test")],
        ),
        n if n == ptr_v6("2001:db8::6".parse().unwrap()) => {
            only(TYPE_PTR, vec![Rdata::Ptr("v6.coro.test")])
        }
        n => match n
            .strip_suffix(".coro.test")
            .and_then(|h| h.strip_prefix('h'))
            .and_then(|num| num.parse::<u32>().ok())
            .filter(|&k| k < 131_072)
        {
            Some(k) => only(TYPE_A, vec![Rdata::A(Ipv4Addr::from(0xC612_0000 + k))]),
            None => return Some((NXDOMAIN, Vec::new())),
        },
    };
    Some((NOERROR, rec))
}

/// The response to query `q`, or `None` for a query we ignore.
pub fn respond(q: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let (name, qtype, qend) = parse_question(q)?;
    let flags_in = u16::from_be_bytes([q[2], q[3]]);
    if flags_in & 0x8000 != 0 {
        return None; // a response, not a query
    }
    let (rcode, records, truncated) = match lookup(&name, qtype, tcp) {
        Some((rc, r)) => (rc, r, false),
        None => (NOERROR, Vec::new(), true),
    };
    let mut flags = 0x8000 | (flags_in & 0x7800) | 0x0400 | (flags_in & 0x0100) | 0x0080 | rcode;
    if truncated {
        flags |= 0x0200;
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&q[0..2]);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&q[12..qend]);
    for r in &records {
        out.extend_from_slice(&[0xC0, 12]); // the question's name
        let (t, data) = match r {
            Rdata::A(a) => (TYPE_A, a.octets().to_vec()),
            Rdata::Aaaa(a) => (TYPE_AAAA, a.octets().to_vec()),
            Rdata::Ptr(n) => {
                let mut d = Vec::new();
                encode_name(n, &mut d);
                (TYPE_PTR, d)
            }
        };
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        // TTL 0 (never cached) but for the one name that tests caching.
        let ttl: u32 = if name == "ttl.coro.test" { 3600 } else { 0 };
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    Some(out)
}

/// A query for (name, type), for checking the server itself.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(name, &mut q);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}
