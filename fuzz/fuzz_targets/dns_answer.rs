//! Arbitrary bytes as a DNS server's answer: a loopback UDP "server" thread
//! replies to every query with a response built around the fuzz input:
//! the query's ID and its question section copied in (c-ares drops a
//! reply whose question does not match, so raw bytes would never get past
//! that check), the flags, section counts and records from the input.
//! c-ares parses it; our side turns the result into addresses, names or a
//! typed error. Never a panic or a hang (the lookup timeout bounds it).
#![no_main]

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use coro::io::{DriverKind, IoScheduler, IoSchedulerOptions};
use coro::net::dns::{Resolver, ResolverOptions};
use libfuzzer_sys::fuzz_target;

struct World {
    sched: IoScheduler,
    resolver: Resolver,
    answer: Arc<Mutex<Vec<u8>>>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr: SocketAddr = sock.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(Vec::new()));
        let a = answer.clone();
        std::thread::spawn(move || {
            let mut q = [0u8; 512];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut q) else { return };
                let input = a.lock().unwrap().clone();
                let _ = sock.send_to(&respond(&q[..n], &input), from);
            }
        });
        let sched = IoScheduler::new(IoSchedulerOptions {
            driver: DriverKind::Epoll,
            ..Default::default()
        })
        .unwrap();
        let resolver = Resolver::new(
            &sched,
            ResolverOptions {
                servers: vec![addr],
                timeout: Duration::from_millis(250),
                tries: 1,
                hosts_file: false,
                ..Default::default()
            },
        )
        .unwrap();
        World {
            sched,
            resolver,
            answer,
        }
    })
}

/// The response to `query`: its ID and question, then from `input` the
/// flags (2 bytes, the answer bit forced on), the answer, authority and
/// additional counts (2 bytes each) and the records' bytes. An input
/// shorter than its header, or a query without a whole question, is
/// answered with the input as it is.
fn respond(query: &[u8], input: &[u8]) -> Vec<u8> {
    let Some(question) = question(query) else {
        return input.to_vec();
    };
    if input.len() < 8 {
        return input.to_vec();
    }
    let mut r = Vec::with_capacity(12 + question.len() + input.len());
    r.extend_from_slice(&query[..2]);
    r.push(input[0] | 0x80);
    r.push(input[1]);
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&input[2..8]);
    r.extend_from_slice(question);
    r.extend_from_slice(&input[8..]);
    r
}

/// The first question of a query: its name's labels up to the root, then
/// type and class.
fn question(query: &[u8]) -> Option<&[u8]> {
    let mut i = 12;
    loop {
        let len = usize::from(*query.get(i)?);
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None; // no compression in a query's first name
        }
        i += 1 + len;
    }
    query.get(12..i + 5)
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    *w.answer.lock().unwrap() = data.to_vec();
    let r = w.resolver.clone();
    let h = w.sched.spawn(async move {
        let _ = r.lookup_ip("fuzz.example").await;
        let _ = r.reverse("127.0.0.1".parse().unwrap()).await;
    });
    coro::sync_wait(h).expect("lookup task panicked");
});
