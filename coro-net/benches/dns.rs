//! DNS lookups per second against the test server of `tests/` on 127.0.0.1
//! (feature `dns`): one lookup at a time (latency bound) and 64 in flight
//! (throughput). Each answer is one A record with TTL 0, so c-ares' cache
//! never answers; every lookup is a UDP round trip through the scheduler's
//! driver. The server is a single std thread, so it is part of what is
//! measured; compare rows of the same run, not absolute numbers across
//! machines.
//!
//! The tokio twin is hickory-resolver on a current-thread tokio runtime
//! (coro's scheduler here is one thread too), pointed at the same server
//! over UDP, asking for the same A records with the same fully qualified
//! names, the same per-try timeout and number of tries (hickory also
//! resends within a try after 333 ms, which a loopback server answering
//! in microseconds never triggers), with its cache unable to answer (TTL
//! 0; the bench checks that a repeated round still reaches the server). `tokio::net::lookup_host`
//! is not a row: it asks the system's `getaddrinfo` on tokio's blocking
//! pool, which cannot be pointed at a server on a test port.
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
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

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

/// The name of lookup `k` of round `i`: a new name each time, as far as
/// the server's zone goes (its answers carry TTL 0 anyway).
fn name(i: u64, per_round: usize, k: usize) -> String {
    let n = (i as usize * per_round + k) % 100_000;
    format!("h{n}.coro.test.")
}

/// Run `iters` rounds of `per_round` lookups (all in flight at once) as one
/// task on the scheduler; returns the time the rounds took.
fn rounds(sched: &IoScheduler, r: &Resolver, iters: u64, per_round: usize) -> Duration {
    let r = r.clone();
    let h = sched.spawn(async move {
        let t0 = Instant::now();
        for i in 0..iters {
            let lookups = (0..per_round).map(|k| r.lookup_ipv4(&name(i, per_round, k)));
            for res in coro_core::when_all(lookups).await {
                res.expect("lookup");
            }
        }
        t0.elapsed()
    });
    coro_core::sync_wait(h).expect("bench task")
}

/// hickory-resolver on a current-thread tokio runtime, asking `srv` only,
/// over UDP, with the same timeout and tries as coro's resolver above.
fn hickory(srv: &dns_server::DnsServer) -> (tokio::runtime::Runtime, TokioResolver) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut udp = ConnectionConfig::udp();
    udp.port = srv.addr().port();
    let server = NameServerConfig::new(srv.addr().ip(), true, vec![udp]);
    let config = ResolverConfig::from_parts(None, vec![], vec![server]);
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(1);
    // hickory counts retries after the first try: 2 is coro's 3 tries.
    opts.attempts = 2;
    opts.use_hosts_file = ResolveHosts::Never;
    // Built inside the runtime: the resolver spawns its connection tasks.
    let resolver = rt.block_on(async {
        hickory_resolver::Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .expect("hickory resolver")
    });
    (rt, resolver)
}

/// [`rounds`] for the tokio twin.
fn hickory_rounds(
    rt: &tokio::runtime::Runtime,
    r: &TokioResolver,
    iters: u64,
    per_round: usize,
) -> Duration {
    rt.block_on(async {
        let t0 = Instant::now();
        for i in 0..iters {
            let lookups = (0..per_round).map(|k| r.ipv4_lookup(name(i, per_round, k)));
            for res in futures::future::join_all(lookups).await {
                res.expect("lookup");
            }
        }
        t0.elapsed()
    })
}

/// One group: lookups one at a time, then `IN_FLIGHT` at once, each run
/// by `run(iters, per_round)`.
fn group(c: &mut Criterion, name: &str, run: impl Fn(u64, usize) -> Duration) {
    let mut g = c.benchmark_group(format!("dns_lookup_ipv4/{name}"));
    g.throughput(Throughput::Elements(1));
    g.bench_function("sequential", |b| b.iter_custom(|iters| run(iters, 1)));
    g.throughput(Throughput::Elements(IN_FLIGHT as u64));
    g.bench_function(format!("{IN_FLIGHT}_in_flight"), |b| {
        b.iter_custom(|iters| run(iters, IN_FLIGHT))
    });
    g.finish();
}

fn lookups(c: &mut Criterion) {
    let srv = dns_server::DnsServer::start();
    for (kind, name) in [(DriverKind::Epoll, "epoll"), (DriverKind::IoUring, "uring")] {
        let Some((sched, r)) = setup(kind, &srv) else {
            eprintln!("dns bench: the {name} driver is not available, skipped");
            continue;
        };
        group(c, name, |iters, n| rounds(&sched, &r, iters, n));
        sched.shutdown();
    }

    let (rt, r) = hickory(&srv);
    // Every lookup must reach the server, as coro's do: the same names
    // twice, so a cache would answer the second round. (More queries than
    // lookups is possible: hickory resends a query after 333 ms without
    // an answer, if the server thread stalls that long.)
    let before = srv.queries();
    hickory_rounds(&rt, &r, 10, IN_FLIGHT);
    hickory_rounds(&rt, &r, 10, IN_FLIGHT);
    assert!(
        srv.queries() - before >= 2 * 10 * IN_FLIGHT,
        "hickory answered a lookup without asking the server (its cache?)"
    );
    group(c, "tokio-hickory", |iters, n| {
        hickory_rounds(&rt, &r, iters, n)
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = lookups
}
criterion_main!(benches);
