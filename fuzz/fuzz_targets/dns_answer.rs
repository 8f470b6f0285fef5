//! Arbitrary bytes as a DNS server's answer: a loopback UDP "server" thread
//! replies to every query with the fuzz input (its ID patched in so c-ares
//! looks at it). c-ares parses it; our side turns the result into addresses
//! or a typed error. Never a panic or a hang (the lookup timeout bounds it).
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
                let mut resp = a.lock().unwrap().clone();
                if n >= 2 && resp.len() >= 2 {
                    resp[0] = q[0];
                    resp[1] = q[1];
                }
                let _ = sock.send_to(&resp, from);
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
