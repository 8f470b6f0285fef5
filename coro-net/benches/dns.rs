//! DNS lookups per second against the test server of `tests/` on 127.0.0.1
//! (feature `dns`): one lookup at a time (latency bound) and 64 in flight
//! (throughput). Each answer is one A record with TTL 0, so c-ares' cache
//! never answers; every lookup is a UDP round trip through the scheduler's
//! driver. The server is a single std thread, so it is part of what is
//! measured; compare rows of the same run, not absolute numbers across
//! machines.
//!
//! ```text
//! cargo bench -p coro-net --features dns --bench dns -- --warm-up-time 1 --measurement-time 3
//! ```

#![allow(missing_docs)] // criterion_group! generates undocumented items

#[path = "../tests/common/dns_server.rs"]
mod dns_server;

use std::time::{Duration, Instant};

use coro_io::{DriverKind, IoScheduler, IoSchedulerOptions};
use coro_net::dns::{Resolver, ResolverOptions};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const IN_FLIGHT: usize = 64;

/// `None` when the driver is not available (io_uring before it lands, or a
/// kernel that forbids it).
fn setup(kind: DriverKind, srv: &dns_server::DnsServer) -> Option<(IoScheduler, Resolver)> {
    let sched = IoScheduler::new(IoSchedulerOptions {
        driver: kind,
        ..Default::default()
    })
    .ok()?;
    let resolver = Resolver::new(
        &sched,
        ResolverOptions {
            servers: vec![srv.addr()],
            timeout: Duration::from_secs(1),
            tries: 3,
            hosts_file: false,
            ..Default::default()
        },
    )
    .expect("resolver");
    Some((sched, resolver))
}

/// Run `iters` rounds of `per_round` lookups (all in flight at once) as one
/// task on the scheduler; returns the time the rounds took.
fn rounds(sched: &IoScheduler, r: &Resolver, iters: u64, per_round: usize) -> Duration {
    let r = r.clone();
    let h = sched.spawn(async move {
        let t0 = Instant::now();
        for i in 0..iters {
            let lookups = (0..per_round).map(|k| {
                let n = (i as usize * per_round + k) % 100_000;
                r.lookup_ipv4(&format!("h{n}.coro.test"))
            });
            for res in coro_core::when_all(lookups).await {
                res.expect("lookup");
            }
        }
        t0.elapsed()
    });
    coro_core::sync_wait(h).expect("bench task")
}

fn lookups(c: &mut Criterion) {
    let srv = dns_server::DnsServer::start();
    for (kind, name) in [(DriverKind::Epoll, "epoll"), (DriverKind::IoUring, "uring")] {
        let Some((sched, r)) = setup(kind, &srv) else {
            eprintln!("dns bench: the {name} driver is not available, skipped");
            continue;
        };
        let mut g = c.benchmark_group(format!("dns_lookup_ipv4/{name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("sequential", |b| {
            b.iter_custom(|iters| rounds(&sched, &r, iters, 1))
        });
        g.throughput(Throughput::Elements(IN_FLIGHT as u64));
        g.bench_function(format!("{IN_FLIGHT}_in_flight"), |b| {
            b.iter_custom(|iters| rounds(&sched, &r, iters, IN_FLIGHT))
        });
        g.finish();
        sched.shutdown();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = lookups
}
criterion_main!(benches);
