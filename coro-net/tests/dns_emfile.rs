//! A lookup that needs a new c-ares channel while the process is out of
//! fds (`EMFILE`): c-ares cannot open `resolv.conf` then and would take it
//! as an empty file (asking 127.0.0.1:53). That lane must not be kept:
//! once fds are free again, lookups go to the configured servers. Its own
//! test binary: the fd limit is process-wide.
#![cfg(feature = "dns")]

#[path = "common/dns_server.rs"]
mod dns_server;

use std::future::Future;
use std::io::Write;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use coro_io::testing::Config;
use coro_net::dns::{Resolver, ResolverOptions};
use dns_server::DnsServer;

fn poll_once<F: Future + Unpin>(fut: &mut F) -> std::task::Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn a_lane_made_out_of_fds_is_not_kept() {
    let srv = DnsServer::start();
    let conf = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dns-emfile-{}-resolv.conf", std::process::id()));
    std::fs::File::create(&conf)
        .unwrap()
        .write_all(format!("nameserver {}\n", srv.addr()).as_bytes())
        .unwrap();
    for cfg in Config::ALL {
        let s = cfg.sched();
        let r = Resolver::new(
            &s,
            ResolverOptions {
                servers: Vec::new(),
                timeout: Duration::from_millis(500),
                tries: 2,
                hosts_file: false,
                resolv_conf_path: Some(conf.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        // The first lookup holds the resolver's one lane (one answered
        // within its first poll gave it back: asked again, bounded)...
        let first = (0..1000)
            .find_map(|_| {
                let mut l = r.lookup_ipv4("a.coro.test");
                poll_once(&mut l).is_pending().then_some(l)
            })
            .expect("a lookup still pending after its first poll");
        // ...so the second needs a new one, with no fd to read the file.
        let full = coro_io::testing::no_free_fds();
        let mut second = r.lookup_ipv4("a.coro.test");
        let out_of_fds = poll_once(&mut second);
        drop(full);
        assert!(
            matches!(out_of_fds, std::task::Poll::Ready(Err(_))),
            "{cfg}: {out_of_fds:?}"
        );
        drop(first);
        drop(second);
        // Two lookups at once take both idle lanes, if there are two.
        for i in 0..3 {
            let (a, b) = (r.clone(), r.clone());
            let h = s.spawn(s.timeout(Duration::from_secs(10), async move {
                futures::future::join(a.lookup_ipv4("a.coro.test"), b.lookup_ipv4("a.coro.test"))
                    .await
            }));
            let (x, y) = coro_core::sync_wait(h).unwrap().expect("within 10 s");
            for got in [x, y] {
                let got = got.map(|mut v| {
                    v.sort();
                    v
                });
                assert_eq!(
                    got,
                    Ok(vec![
                        Ipv4Addr::new(192, 0, 2, 1),
                        Ipv4Addr::new(192, 0, 2, 2)
                    ]),
                    "{cfg}: round {i}"
                );
            }
        }
        s.shutdown();
    }
    let _ = std::fs::remove_file(&conf);
}
