//! `dns::Resolver` against a tiny authoritative server on 127.0.0.1 that the
//! test starts (`common/dns_server.rs`): A, AAAA, PTR, NXDOMAIN, NODATA,
//! SERVFAIL, REFUSED, a truncated UDP answer (TCP fallback), a server that
//! never answers, 1,000 concurrent lookups, bad names, the hosts file,
//! cancellation and shutdown; and against dnsmasq, a real resolver. Every
//! test runs on every configuration.
#![cfg(feature = "dns")]

#[path = "common/dns_server.rs"]
mod dns_server;

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use coro_io::testing::Config;
use coro_io::{ExecutionStrategy, IoScheduler, IoSchedulerOptions};
use coro_net::dns::{Error, Resolver, ResolverOptions, c_ares_version};
use dns_server::DnsServer;

/// No test may take longer than this (a hang fails instead of blocking CI).
const BOUND: Duration = Duration::from_secs(30);

fn sched(cfg: Config) -> IoScheduler {
    cfg.sched()
}

fn opts(servers: &[&DnsServer]) -> ResolverOptions {
    ResolverOptions {
        servers: servers.iter().map(|s| s.addr()).collect(),
        timeout: Duration::from_millis(500),
        tries: 2,
        // Answers come from the test server only, whatever /etc/hosts says.
        hosts_file: false,
        // No search domains from the machine's resolv.conf.
        resolv_conf_path: Some(empty_file("resolv.conf", "")),
        ..Default::default()
    }
}

fn resolver(s: &IoScheduler, servers: &[&DnsServer]) -> Resolver {
    Resolver::new(s, opts(servers)).expect("resolver")
}

/// Run `fut` as a task on `s`, bounded by a timer of `s` and, should its
/// loop be stuck, by a plain thread 10 s later.
fn run<T: Send + 'static>(s: &IoScheduler, fut: impl Future<Output = T> + Send + 'static) -> T {
    let h = s.spawn(s.timeout(BOUND, fut));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(coro_core::sync_wait(h));
    });
    rx.recv_timeout(BOUND + Duration::from_secs(10))
        .expect("the scheduler is stuck: its timer never fired")
        .expect("task")
        .expect("finished within the bound")
}

/// A file in the target directory's tmp dir, unique per call.
fn empty_file(name: &str, contents: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!(
        "dns-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    path
}

fn set<T: Ord>(v: Vec<T>) -> BTreeSet<T> {
    v.into_iter().collect()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn linked_c_ares_is_at_least_1_34_8() {
    let (major, minor, patch) = c_ares_version();
    assert!(
        (major, minor, patch) >= (1, 34, 8),
        "linked c-ares {major}.{minor}.{patch} predates the 1.34.8 security fixes"
    );
    let (text, _) = c_ares::version();
    assert!(
        text.starts_with(&format!("{major}.{minor}.{patch}")),
        "{text}"
    );
}

#[test]
fn test_server_answers_by_hand() {
    // The fixture itself: one A query, one TC answer, parsed by hand.
    let q = dns_server::query(7, "a.coro.test", 1);
    let r = dns_server::respond(&q, false).unwrap();
    assert_eq!(&r[0..2], &[0, 7]);
    assert_eq!(r[3] & 0x0f, 0, "rcode NOERROR");
    assert_eq!(u16::from_be_bytes([r[6], r[7]]), 2, "two answers");
    let big = dns_server::respond(&dns_server::query(8, "big.coro.test", 1), false).unwrap();
    assert_ne!(big[2] & 0x02, 0, "TC bit over UDP");
    let big = dns_server::respond(&dns_server::query(8, "big.coro.test", 1), true).unwrap();
    assert_eq!(u16::from_be_bytes([big[6], big[7]]), 40);
}

fn forward_a_and_aaaa(cfg: Config) {
    let srv = DnsServer::start();
    let s = sched(cfg);
    let r = resolver(&s, &[&srv]);
    let (a, aaaa, both) = run(&s, async move {
        (
            r.lookup_ipv4("a.coro.test").await,
            r.lookup_ipv6("v6.coro.test").await,
            r.lookup_ip("both.coro.test.").await,
        )
    });
    assert_eq!(set(a.unwrap()), set(vec![v4("192.0.2.1"), v4("192.0.2.2")]));
    assert_eq!(aaaa.unwrap(), ["2001:db8::6".parse::<Ipv6Addr>().unwrap()]);
    let want: BTreeSet<IpAddr> = ["192.0.2.3", "2001:db8::3"]
        .iter()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(set(both.unwrap()), want);
    assert!(
        srv.udp_queries() >= 4,
        "A, AAAA, and A+AAAA went to the server"
    );
}

fn reverse_ptr(cfg: Config) {
    let srv = DnsServer::start();
    let s = sched(cfg);
    let r = resolver(&s, &[&srv]);
    let (one, two, six, none) = run(&s, async move {
        (
            r.reverse("192.0.2.1".parse().unwrap()).await,
            r.reverse("192.0.2.2".parse().unwrap()).await,
            r.reverse("2001:db8::6".parse().unwrap()).await,
            r.reverse("192.0.2.99".parse().unwrap()).await,
        )
    });
    assert_eq!(one.unwrap(), ["a.coro.test"]);
    assert_eq!(
        set(two.unwrap()),
        set(vec![
            "a.coro.test".to_string(),
            "alias.coro.test".to_string()
        ])
    );
    assert_eq!(six.unwrap(), ["v6.coro.test"]);
    assert_eq!(none, Err(Error::NotFound));
}

fn nxdomain_and_nodata(cfg: Config) {
    let srv = DnsServer::start();
    let s = sched(cfg);
    let r = resolver(&s, &[&srv]);
    let (nx, nx4, nodata, v6_of_v4) = run(&s, async move {
        (
            r.lookup_ip("nope.coro.test").await,
            r.lookup_ipv4("nope.coro.test").await,
            r.lookup_ip("noaddr.coro.test").await,
            r.lookup_ipv6("a.coro.test").await,
        )
    });
    assert_eq!(nx, Err(Error::NotFound));
    assert_eq!(nx4, Err(Error::NotFound));
    assert_eq!(nodata, Err(Error::NoData));
    assert_eq!(v6_of_v4, Err(Error::NoData));
    let e: std::io::Error = Error::NotFound.into();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
}

fn servfail_and_refused(cfg: Config) {
    let srv = DnsServer::start();
    let s = sched(cfg);
    let r = resolver(&s, &[&srv]);
    let (sf, rf) = run(&s, async move {
        (
            r.lookup_ipv4("servfail.coro.test").await,
            r.lookup_ipv4("refused.coro.test").await,
        )
    });
    assert_eq!(sf, Err(Error::ServFail));
    assert_eq!(rf, Err(Error::Refused));
}

fn truncated_answer_falls_back_to_tcp(cfg: Config) {
    let srv = DnsServer::start();
    let s = sched(cfg);
    let r = resolver(&s, &[&srv]);
    let big = run(&s, async move { r.lookup_ipv4("big.coro.test").await }).unwrap();
    let want: BTreeSet<Ipv4Addr> = (0..40).map(|i| Ipv4Addr::new(192, 0, 2, 100 + i)).collect();
    assert_eq!(set(big), want);
    assert!(srv.udp_queries() >= 1, "asked over UDP first");
    assert!(srv.tcp_queries() >= 1, "then over TCP");
}

/// A lookup against a server that never answers, with `timeout` per try
/// and `tries`: the server, the outcome and how long it took.
fn lookup_a_silent_server(
    cfg: Config,
    timeout: Duration,
    tries: u32,
) -> (DnsServer, Result<Vec<Ipv4Addr>, Error>, Duration) {
    let srv = DnsServer::silent();
    let s = sched(cfg);
    let r = Resolver::new(
        &s,
        ResolverOptions {
            timeout,
            tries,
            ..opts(&[&srv])
        },
    )
    .unwrap();
    let t0 = Instant::now();
    let res = run(&s, async move { r.lookup_ipv4("a.coro.test").await });
    (srv, res, t0.elapsed())
}

fn silent_server_times_out_within_the_bound(cfg: Config) {
    let (srv, res, took) = lookup_a_silent_server(cfg, Duration::from_millis(250), 2);
    assert_eq!(res, Err(Error::Timeout));
    // 2 tries x 250 ms, and not much more: the scheduler timer drives c-ares.
    assert!(
        took >= Duration::from_millis(450),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // The server thread counts a query when it has read it, which a loaded
    // machine may delay past the resolver's give-up: wait for the count.
    srv.wait_queries(2, BOUND);
    assert_eq!(srv.udp_queries(), 2, "one query per try");
}

/// On a paused clock, `advance` past a lookup's bound ends it with
/// `Timeout`, as tokio's timers would. c-ares times its tries on the real
/// clock: each virtual sleep the lookup armed for it fired, c-ares found
/// nothing due and asked for another, and the lookup waited for ever.
fn a_paused_clock_advanced_past_the_bound_times_the_lookup_out(cfg: Config) {
    let srv = DnsServer::silent();
    let s = cfg.sched_with(IoSchedulerOptions {
        start_paused: true,
        ..Default::default()
    });
    let r = Resolver::new(
        &s,
        ResolverOptions {
            timeout: Duration::from_secs(5),
            tries: 1,
            ..opts(&[&srv])
        },
    )
    .unwrap();
    let h = s.spawn(async move { r.lookup_ipv4("a.coro.test").await });
    srv.wait_queries(1, BOUND);
    s.advance(Duration::from_secs(60));
    // Well within the 5 s try on the real clock.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !h.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{cfg}: advance did not end the lookup"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        coro_core::sync_wait(h).unwrap(),
        Err(Error::Timeout),
        "{cfg}"
    );
    s.shutdown();
}

/// A timeout below a millisecond: c-ares takes whole milliseconds and read
/// the 0 it rounded to as "not set", so each try waited its default 2 s
/// (up to 5 s), not the millisecond it was given.
fn a_sub_millisecond_timeout_is_not_c_ares_default(cfg: Config) {
    let (_srv, res, took) = lookup_a_silent_server(cfg, Duration::from_micros(500), 1);
    assert_eq!(res, Err(Error::Timeout));
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

/// Every lookup asks the server: c-ares' per-channel query cache is off
/// (each lane kept its own, growing by every answer for up to its TTL).
fn lookups_are_not_cached(cfg: Config) {
    let srv = DnsServer::start();
    let s = sched(cfg);
    let r = resolver(&s, &[&srv]);
    let (a, b) = run(&s, async move {
        (
            r.lookup_ipv4("ttl.coro.test").await,
            r.lookup_ipv4("ttl.coro.test").await,
        )
    });
    assert_eq!(a.unwrap(), [v4("192.0.2.9")]);
    assert_eq!(b.unwrap(), [v4("192.0.2.9")]);
    srv.wait_queries(2, BOUND);
    // At least 2 (a retry on a loaded machine may make 3); a cache gave 1.
    assert!(
        srv.udp_queries() >= 2,
        "the second lookup was answered from a cache"
    );
}

fn unreachable_server_is_connection_refused(cfg: Config) {
    // A port nothing listens on: the kernel answers with ICMP port unreachable.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = sched(cfg);
    let r = Resolver::new(
        &s,
        ResolverOptions {
            servers: vec![SocketAddr::from(([127, 0, 0, 1], port))],
            ..opts(&[])
        },
    )
    .unwrap();
    assert!(format!("{r:?}").contains("idle_lanes: 1"), "{r:?}");
    let r2 = r.clone();
    let res = run(&s, async move { r2.lookup_ipv4("a.coro.test").await });
    assert_eq!(res, Err(Error::ConnectionRefused));
    // A lane whose lookup found no server to ask is not kept (it may be
    // one configured while the process was out of fds).
    assert!(format!("{r:?}").contains("idle_lanes: 0"), "{r:?}");
}

fn second_server_answers_when_the_first_is_silent(cfg: Config) {
    let silent = DnsServer::silent();
    let good = DnsServer::start();
    let s = sched(cfg);
    let r = Resolver::new(
        &s,
        ResolverOptions {
            // One try per server: the good one must answer within it, also
            // when its thread waits for a core (250 ms did not always).
            timeout: Duration::from_secs(1),
            tries: 1,
            ..opts(&[&silent, &good])
        },
    )
    .unwrap();
    let res = run(&s, async move { r.lookup_ipv4("a.coro.test").await });
    assert_eq!(
        set(res.unwrap()),
        set(vec![v4("192.0.2.1"), v4("192.0.2.2")])
    );
    silent.wait_queries(1, BOUND);
    assert_eq!(silent.udp_queries(), 1);
    assert_eq!(good.udp_queries(), 1);
}

fn rotate_spreads_queries_and_order_does_not(cfg: Config) {
    let (a, b) = (DnsServer::start(), DnsServer::start());
    let s = sched(cfg);
    // A long timeout: a late answer from `a` must not send a retry to `b`.
    let ordered = Resolver::new(
        &s,
        ResolverOptions {
            timeout: Duration::from_secs(5),
            ..opts(&[&a, &b])
        },
    )
    .unwrap();
    let rotating = Resolver::new(
        &s,
        ResolverOptions {
            rotate: true,
            timeout: Duration::from_secs(5),
            ..opts(&[&a, &b])
        },
    )
    .unwrap();
    run(&s, async move {
        for _ in 0..32 {
            ordered.lookup_ipv4("a.coro.test").await.unwrap();
        }
    });
    assert_eq!((a.udp_queries(), b.udp_queries()), (32, 0));
    run(&s, async move {
        for _ in 0..32 {
            rotating.lookup_ipv4("a.coro.test").await.unwrap();
        }
    });
    // 2^-31 odds that a fair rotation picks one server 32 times in a row.
    assert!(
        b.udp_queries() > 0 && a.udp_queries() > 32,
        "{} {}",
        a.udp_queries(),
        b.udp_queries()
    );
}

fn sequential_lookups_never_miss_readiness(cfg: Config) {
    // Every lookup opens a UDP socket and closes it: the fd number comes
    // back each time. One try, so a missed readiness event (a stale driver
    // registration for the reused number) fails with Timeout instead of
    // being hidden by a retry.
    let srv = DnsServer::start();
    let s = sched(cfg);
    let r = Resolver::new(
        &s,
        ResolverOptions {
            timeout: Duration::from_secs(5),
            tries: 1,
            ..opts(&[&srv])
        },
    )
    .unwrap();
    let fds0 = s.driver().registered_fds();
    let r2 = r.clone();
    run(&s, async move {
        for i in 0..200u32 {
            let got = r2.lookup_ipv4(&format!("h{i}.coro.test")).await;
            assert_eq!(got, Ok(vec![Ipv4Addr::from(0xC612_0000 + i)]), "h{i}");
        }
    });
    assert_eq!(srv.udp_queries(), 200);
    assert_eq!(s.driver().registered_fds(), fds0);
}

fn thousand_concurrent_lookups(cfg: Config) {
    const N: u32 = 1000;
    let srv = DnsServer::start();
    let s = sched(cfg);
    let r = Resolver::new(
        &s,
        ResolverOptions {
            // Datagrams the loaded server drops are retried, not failed.
            tries: 4,
            ..opts(&[&srv])
        },
    )
    .unwrap();
    let s2 = s.clone();
    let results = run(&s, async move {
        let handles: Vec<_> = (0..N)
            .map(|i| s2.spawn(r.lookup_ipv4(&format!("h{i}.coro.test"))))
            .collect();
        coro_core::when_all(handles).await
    });
    assert_eq!(results.len(), N as usize);
    for (i, res) in results.into_iter().enumerate() {
        let got = res.expect("task").unwrap_or_else(|e| panic!("h{i}: {e}"));
        assert_eq!(got, [Ipv4Addr::from(0xC612_0000 + i as u32)], "h{i}");
    }
    assert!(srv.udp_queries() >= N as usize);
}

fn bad_names_are_rejected_before_sending(cfg: Config) {
    let srv = DnsServer::start();
    let s = sched(cfg);
    let r = resolver(&s, &[&srv]);
    let long_label = format!("{}.coro.test", "x".repeat(64));
    let long_name = ["abcdefghij"; 26].join(".");
    let results = run(&s, async move {
        let mut out = Vec::new();
        for n in [
            "",
            ".",
            "a..coro.test",
            "has space.coro.test",
            "nul\0.coro.test",
            "ünï.coro.test",
            "a/b",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            out.push((n.to_owned(), r.lookup_ip(n).await));
            out.push((
                n.to_owned(),
                r.lookup_ipv4(n)
                    .await
                    .map(|v| v.into_iter().map(IpAddr::V4).collect()),
            ));
        }
        out
    });
    for (n, res) in results {
        assert_eq!(res, Err(Error::BadName), "{n:?}");
    }
    assert_eq!(srv.queries(), 0, "nothing was sent for a bad name");
}

fn literals_need_no_server(cfg: Config) {
    let s = sched(cfg);
    // A silent server would make any query time out.
    let srv = DnsServer::silent();
    let r = resolver(&s, &[&srv]);
    let (ip, four, six, six_of_four) = run(&s, async move {
        (
            r.lookup_ip("192.0.2.9").await,
            r.lookup_ipv4("192.0.2.9").await,
            r.lookup_ipv6("2001:db8::9").await,
            r.lookup_ipv6("192.0.2.9").await,
        )
    });
    assert_eq!(ip.unwrap(), [IpAddr::from([192, 0, 2, 9])]);
    assert_eq!(four.unwrap(), [v4("192.0.2.9")]);
    assert_eq!(six.unwrap(), ["2001:db8::9".parse::<Ipv6Addr>().unwrap()]);
    assert_eq!(six_of_four, Err(Error::NoData));
    assert_eq!(srv.queries(), 0);
}

fn hosts_file_is_honoured(cfg: Config) {
    let srv = DnsServer::start();
    let s = sched(cfg);
    let hosts = empty_file(
        "hosts",
        "192.0.2.77 fromhosts.coro.test fh\n2001:db8::77 fromhosts.coro.test\n",
    );
    let with = Resolver::new(
        &s,
        ResolverOptions {
            hosts_file: true,
            hosts_path: Some(hosts.clone()),
            ..opts(&[&srv])
        },
    )
    .unwrap();
    let without = Resolver::new(
        &s,
        ResolverOptions {
            hosts_file: false,
            hosts_path: Some(hosts),
            ..opts(&[&srv])
        },
    )
    .unwrap();
    let (a, names, dns_a) = {
        let w = with.clone();
        run(&s, async move {
            (
                w.lookup_ip("fromhosts.coro.test").await,
                w.reverse("192.0.2.77".parse().unwrap()).await,
                // Not in the file: DNS still answers.
                w.lookup_ipv4("a.coro.test").await,
            )
        })
    };
    let want: BTreeSet<IpAddr> = ["192.0.2.77", "2001:db8::77"]
        .iter()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(set(a.unwrap()), want);
    assert_eq!(names.unwrap()[0], "fromhosts.coro.test");
    assert_eq!(dns_a.unwrap().len(), 2);
    let before = srv.queries();
    let a = run(&s, async move { with.lookup_ipv4("fh").await });
    assert_eq!(a.unwrap(), [v4("192.0.2.77")]);
    assert_eq!(srv.queries(), before, "answered from the hosts file");
    // With the hosts file off the name goes to DNS, which does not know it.
    let a = run(&s, async move {
        without.lookup_ipv4("fromhosts.coro.test").await
    });
    assert_eq!(a, Err(Error::NotFound));
    assert!(srv.queries() > before);
}

fn system_configuration_when_no_servers_are_given(cfg: Config) {
    let srv = DnsServer::start();
    let s = sched(cfg);
    let conf = empty_file(
        "resolv.conf",
        &format!("nameserver {}\noptions timeout:1 attempts:2\n", srv.addr()),
    );
    let r = Resolver::new(
        &s,
        ResolverOptions {
            servers: Vec::new(),
            hosts_file: false,
            resolv_conf_path: Some(conf),
            ..Default::default()
        },
    )
    .unwrap();
    let a = run(&s, async move { r.lookup_ipv4("a.coro.test").await });
    assert_eq!(a.unwrap().len(), 2);
    assert!(srv.udp_queries() >= 1);
}

/// c-ares answers `localhost` names itself, in the hosts file step, and
/// never sends them: with the hosts file off they fail (with its error for
/// "no server asked").
fn localhost_without_the_hosts_file_is_not_sent(cfg: Config) {
    let srv = DnsServer::start();
    let s = sched(cfg);
    let r = resolver(&s, &[&srv]);
    let got = run(&s, async move {
        (
            r.lookup_ip("localhost").await,
            r.lookup_ipv4("foo.localhost").await,
        )
    });
    assert_eq!(
        got,
        (Err(Error::ConnectionRefused), Err(Error::ConnectionRefused)),
        "{cfg}"
    );
    assert_eq!(srv.queries(), 0, "{cfg}");
}

/// A lookup of `a.coro.test` polled once and still pending, so that it
/// holds a lane (one the server answered at once gave its lane back:
/// asked again, a bounded number of times).
fn pending_lookup(r: &Resolver) -> coro_net::dns::Lookup<Vec<Ipv4Addr>> {
    for _ in 0..1000 {
        let mut l = r.lookup_ipv4("a.coro.test");
        if poll_once(&mut l).is_pending() {
            return l;
        }
    }
    panic!("every lookup was answered within its first poll");
}

/// A resolver with no servers of its own: they come from `conf`.
fn system_resolver(s: &IoScheduler, conf: &std::path::Path) -> Resolver {
    Resolver::new(
        s,
        ResolverOptions {
            servers: Vec::new(),
            timeout: Duration::from_millis(500),
            tries: 2,
            hosts_file: false,
            resolv_conf_path: Some(conf.to_owned()),
            ..Default::default()
        },
    )
    .unwrap()
}

fn lookup_a(s: &IoScheduler, r: &Resolver) -> Result<BTreeSet<Ipv4Addr>, Error> {
    let r = r.clone();
    run(s, async move { r.lookup_ipv4("a.coro.test").await }).map(set)
}

/// c-ares takes a configuration file it cannot read as an empty one (and
/// asks 127.0.0.1:53): a lane made while `resolv.conf` was missing for a
/// moment must not serve the lookups after it is back.
fn a_lane_made_while_resolv_conf_was_missing_is_not_kept(cfg: Config) {
    let srv = DnsServer::start();
    let s = sched(cfg);
    let text = format!("nameserver {}\n", srv.addr());
    let conf = empty_file("resolv.conf", &text);
    let r = system_resolver(&s, &conf);
    // The first lookup holds the resolver's one lane...
    let first = pending_lookup(&r);
    std::fs::remove_file(&conf).unwrap();
    // ...so the second makes a lane while the file is gone.
    let mut second = r.lookup_ipv4("a.coro.test");
    let _ = poll_once(&mut second);
    std::fs::write(&conf, &text).unwrap();
    // Both lanes go back (the second may have failed already).
    drop(first);
    drop(second);
    // Two lookups at once take both idle lanes.
    let want = set(vec![v4("192.0.2.1"), v4("192.0.2.2")]);
    for i in 0..3 {
        let (a, b) = (r.clone(), r.clone());
        let (x, y) = run(&s, async move {
            futures::future::join(a.lookup_ipv4("a.coro.test"), b.lookup_ipv4("a.coro.test")).await
        });
        assert_eq!(x.map(set), Ok(want.clone()), "{cfg}: round {i}");
        assert_eq!(y.map(set), Ok(want.clone()), "{cfg}: round {i}");
    }
}

/// A `resolv.conf` whose only nameserver c-ares drops (link-local with no
/// interface): c-ares rightly falls back to its default, and the resolver
/// must still be made and answer from the hosts file.
fn a_resolv_conf_of_servers_c_ares_drops_still_makes_a_resolver(cfg: Config) {
    let s = sched(cfg);
    let conf = empty_file("resolv.conf", "nameserver fe80::1\nnameserver fec0::53\n");
    let hosts = empty_file("hosts", "192.0.2.77 fromhosts.coro.test\n");
    let r = Resolver::new(
        &s,
        ResolverOptions {
            servers: Vec::new(),
            hosts_path: Some(hosts),
            resolv_conf_path: Some(conf),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{cfg}: {e}"));
    let got = run(
        &s,
        async move { r.lookup_ipv4("fromhosts.coro.test").await },
    );
    assert_eq!(got, Ok(vec![v4("192.0.2.77")]), "{cfg}");
}

/// An edited `resolv.conf` (here replaced by a rename, as most tools do)
/// reaches the next lookup, as with glibc: the idle lane made from the old
/// file is not reused.
fn an_edited_resolv_conf_reaches_the_next_lookup(cfg: Config) {
    let (old, new) = (DnsServer::start(), DnsServer::start());
    let s = sched(cfg);
    let conf = empty_file("resolv.conf", &format!("nameserver {}\n", old.addr()));
    let r = system_resolver(&s, &conf);
    assert!(lookup_a(&s, &r).is_ok());
    let asked = old.udp_queries();
    assert!(asked >= 1);
    let edited = empty_file("resolv.conf", &format!("nameserver {}\n", new.addr()));
    std::fs::rename(&edited, &conf).unwrap();
    for _ in 0..3 {
        assert!(lookup_a(&s, &r).is_ok(), "{cfg}");
    }
    assert!(
        new.udp_queries() >= 3,
        "{cfg}: the new server was not asked"
    );
    assert_eq!(old.udp_queries(), asked, "{cfg}: the old server was asked");
}

/// Poll `fut` once on this thread (the scheduler's own thread drives I/O).
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}

fn dropped_lookup_is_cancelled_in_c_ares(cfg: Config) {
    const TRIES: usize = 3;
    let silent = DnsServer::silent();
    let s = sched(cfg);
    let r = Resolver::new(
        &s,
        ResolverOptions {
            // Long enough that no dropped round's query is retried before
            // its checks (the server thread may lag on a loaded machine);
            // the full lookup at the end waits TRIES times this.
            timeout: Duration::from_millis(1000),
            tries: TRIES as u32,
            ..opts(&[&silent])
        },
    )
    .unwrap();
    let fds0 = s.driver().registered_fds();
    let timers0 = s.timer_count();
    for round in 1..=3 {
        let mut fut = r.lookup_ipv4("a.coro.test");
        assert!(poll_once(&mut fut).is_pending());
        // The query is on the wire: c-ares has a socket and a timer.
        assert_eq!(silent.wait_queries(round, BOUND), round);
        assert_eq!(
            s.timer_count(),
            timers0 + 1,
            "c-ares' timeout is a scheduler timer"
        );
        drop(fut);
        assert_eq!(s.timer_count(), timers0, "timer removed with the future");
        assert_eq!(
            s.driver().registered_fds(),
            fds0,
            "socket closed and deregistered"
        );
    }
    // A full lookup on the same resolver (the same, reused c-ares channel)
    // sends exactly its own TRIES queries: none of the cancelled ones is
    // still being retried.
    let res = run(&s, async move { r.lookup_ipv4("a.coro.test").await });
    assert_eq!(res, Err(Error::Timeout));
    silent.wait_queries(3 + TRIES, BOUND);
    assert_eq!(silent.udp_queries(), 3 + TRIES);
    assert_eq!(s.timer_count(), timers0);
    assert_eq!(s.driver().registered_fds(), fds0);
}

fn lookup_after_shutdown_is_an_error_not_a_hang(cfg: Config) {
    let silent = DnsServer::silent();
    let s = sched(cfg);
    let r = resolver(&s, &[&silent]);
    let mut pending = r.lookup_ipv4("a.coro.test");
    assert!(poll_once(&mut pending).is_pending());
    assert!(silent.wait_queries(1, BOUND) >= 1);
    s.shutdown();
    assert_eq!(poll_once(&mut pending), Poll::Ready(Err(Error::Shutdown)));
    let mut late = r.lookup_ip("a.coro.test");
    assert_eq!(poll_once(&mut late), Poll::Ready(Err(Error::Shutdown)));
}

fn runs_on_a_thread_pool_scheduler(cfg: Config) {
    let srv = DnsServer::start();
    let s = IoScheduler::new(IoSchedulerOptions {
        driver: cfg.kind(),
        uring: cfg.uring(),
        execution: ExecutionStrategy::ThreadPool(Default::default()),
        ..Default::default()
    })
    .unwrap();
    let r = resolver(&s, &[&srv]);
    let s2 = s.clone();
    let got = run(&s, async move {
        let hs: Vec<_> = (0..64)
            .map(|i| s2.spawn(r.lookup_ipv4(&format!("h{i}.coro.test"))))
            .collect();
        coro_core::when_all(hs).await
    });
    for (i, g) in got.into_iter().enumerate() {
        assert_eq!(
            g.unwrap().unwrap(),
            [Ipv4Addr::from(0xC612_0000 + i as u32)]
        );
    }
}

fn runs_on_a_manual_scheduler(cfg: Config) {
    let srv = DnsServer::start();
    let s = IoScheduler::new(IoSchedulerOptions {
        driver: cfg.kind(),
        uring: cfg.uring(),
        thread_strategy: coro_io::ThreadStrategy::Manual,
        ..Default::default()
    })
    .unwrap();
    let r = resolver(&s, &[&srv]);
    let h = s.spawn(async move {
        (
            r.lookup_ip("both.coro.test").await,
            r.reverse("192.0.2.1".parse().unwrap()).await,
        )
    });
    let deadline = Instant::now() + BOUND;
    while !h.is_finished() {
        assert!(Instant::now() < deadline, "lookups did not finish");
        s.process_events(Some(Duration::from_millis(100)));
    }
    let (ips, names) = coro_core::sync_wait(h).unwrap();
    assert_eq!(ips.unwrap().len(), 2);
    assert_eq!(names.unwrap(), ["a.coro.test"]);
}

fn invalid_options_are_typed_errors(cfg: Config) {
    let s = sched(cfg);
    let bad = [
        ResolverOptions {
            tries: 0,
            ..Default::default()
        },
        ResolverOptions {
            timeout: Duration::ZERO,
            ..Default::default()
        },
        ResolverOptions {
            servers: vec!["127.0.0.1:0".parse().unwrap()],
            ..Default::default()
        },
        ResolverOptions {
            servers: vec!["0.0.0.0:53".parse().unwrap()],
            ..Default::default()
        },
        // c-ares takes a missing file as an empty one (no servers: it
        // asked 127.0.0.1:53; no hosts): a typo went unnoticed.
        ResolverOptions {
            resolv_conf_path: Some("/nonexistent/resolv.conf".into()),
            ..Default::default()
        },
        ResolverOptions {
            hosts_path: Some("/nonexistent/hosts".into()),
            ..Default::default()
        },
    ];
    for o in bad {
        let e = Resolver::new(&s, o.clone()).unwrap_err();
        assert!(matches!(e, Error::InvalidOptions(_)), "{o:?}: {e}");
        assert_eq!(
            std::io::Error::from(e).kind(),
            std::io::ErrorKind::InvalidInput
        );
    }
}

#[test]
fn lookup_futures_are_send_and_static() {
    fn check<T: Send + 'static>(_: &T) {}
    let s = sched(Config::EPOLL);
    let r = Resolver::new(&s, ResolverOptions::default()).unwrap();
    check(&r.lookup_ip("localhost"));
    check(&r.reverse(IpAddr::from([127, 0, 0, 1])));
    fn sync<T: Send + Sync>() {}
    sync::<Resolver>();
    sync::<Error>();
}

/// dnsmasq on 127.0.0.1 at a free port, answering for a few `coro.test`
/// names from its command line only (no upstream, no hosts file): a real
/// resolver's framing, EDNS and flags, where `DnsServer` is our own.
struct Dnsmasq {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Dnsmasq {
    /// `None` (a skip) only without dnsmasq and with `CORO_SKIP_INTEROP`
    /// set; a missing dnsmasq fails otherwise (scripts/test installs it).
    fn start() -> Option<Dnsmasq> {
        // A port found free for UDP may be taken for TCP (dnsmasq wants
        // both): then dnsmasq exits, and another port is tried.
        for _ in 0..5 {
            match Dnsmasq::try_start()? {
                Ok(d) => return Some(d),
                Err(why) => eprintln!("dnsmasq did not start ({why}); another port"),
            }
        }
        panic!("dnsmasq did not start on any of 5 ports");
    }

    fn try_start() -> Option<Result<Dnsmasq, String>> {
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|u| u.local_addr())
            .unwrap()
            .port();
        let pid_file = empty_file("dnsmasq.pid", "");
        // In /usr/sbin, which a user's PATH may lack.
        let program = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("dnsmasq");
        let spawned = std::process::Command::new(program)
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                &format!("--pid-file={}", pid_file.display()),
                "--host-record=a.coro.test,192.0.2.1",
                "--host-record=both.coro.test,192.0.2.3,2001:db8::3",
                "--address=/nx.coro.test/",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) if std::env::var_os("CORO_SKIP_INTEROP").is_some() => {
                eprintln!("skipping: dnsmasq cannot run ({e})");
                return None;
            }
            Err(e) => panic!(
                "dnsmasq is needed (scripts/test installs it; CORO_SKIP_INTEROP=1 skips): {e}"
            ),
        };
        let mut d = Dnsmasq {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        // Listening once its TCP port takes a connection and it still
        // runs (a connect to someone else's listener on a port it could
        // not bind would succeed too) (bounded).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let connected = std::net::TcpStream::connect(d.addr).is_ok();
            if let Ok(Some(status)) = d.child.try_wait() {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(d.child.stderr.as_mut().unwrap(), &mut err);
                return Some(Err(format!("{status}: {}", err.trim())));
            }
            if connected {
                // Give a failed bind of the other protocol time to end it.
                std::thread::sleep(Duration::from_millis(50));
                if let Ok(None) = d.child.try_wait() {
                    return Some(Ok(d));
                }
                continue;
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn a_real_resolver_answers(cfg: Config) {
    let Some(dnsmasq) = Dnsmasq::start() else {
        return;
    };
    let s = sched(cfg);
    let r = Resolver::new(
        &s,
        ResolverOptions {
            servers: vec![dnsmasq.addr],
            ..opts(&[])
        },
    )
    .expect("resolver");
    let (a, both, six, nx, refused, ptr) = run(&s, async move {
        (
            r.lookup_ipv4("a.coro.test").await,
            r.lookup_ip("both.coro.test").await,
            r.lookup_ipv6("both.coro.test").await,
            r.lookup_ip("nx.coro.test").await,
            r.lookup_ipv4("elsewhere.coro.test").await,
            r.reverse("192.0.2.3".parse().unwrap()).await,
        )
    });
    assert_eq!(a.unwrap(), [v4("192.0.2.1")], "{cfg}");
    let want: BTreeSet<IpAddr> = ["192.0.2.3", "2001:db8::3"]
        .iter()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(set(both.unwrap()), want, "{cfg}");
    assert_eq!(
        six.unwrap(),
        ["2001:db8::3".parse::<Ipv6Addr>().unwrap()],
        "{cfg}"
    );
    assert_eq!(nx, Err(Error::NotFound), "{cfg}");
    // No upstream to ask: dnsmasq refuses names it has no answer for.
    assert_eq!(refused, Err(Error::Refused), "{cfg}");
    assert_eq!(ptr.unwrap(), ["both.coro.test"], "{cfg}");
    s.shutdown();
}

coro_io::driver_tests!(
    forward_a_and_aaaa,
    reverse_ptr,
    nxdomain_and_nodata,
    servfail_and_refused,
    truncated_answer_falls_back_to_tcp,
    silent_server_times_out_within_the_bound,
    a_sub_millisecond_timeout_is_not_c_ares_default,
    a_paused_clock_advanced_past_the_bound_times_the_lookup_out,
    lookups_are_not_cached,
    unreachable_server_is_connection_refused,
    second_server_answers_when_the_first_is_silent,
    rotate_spreads_queries_and_order_does_not,
    sequential_lookups_never_miss_readiness,
    thousand_concurrent_lookups,
    bad_names_are_rejected_before_sending,
    literals_need_no_server,
    hosts_file_is_honoured,
    system_configuration_when_no_servers_are_given,
    a_lane_made_while_resolv_conf_was_missing_is_not_kept,
    localhost_without_the_hosts_file_is_not_sent,
    an_edited_resolv_conf_reaches_the_next_lookup,
    a_resolv_conf_of_servers_c_ares_drops_still_makes_a_resolver,
    dropped_lookup_is_cancelled_in_c_ares,
    lookup_after_shutdown_is_an_error_not_a_hang,
    invalid_options_are_typed_errors,
    a_real_resolver_answers,
);

/// Tests that build a scheduler of one strategy themselves.
mod strategies {
    use super::*;
    coro_io::driver_tests!(
        drivers: runs_on_a_thread_pool_scheduler,
        runs_on_a_manual_scheduler,
    );
}
