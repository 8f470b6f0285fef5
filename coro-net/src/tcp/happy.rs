//! Connecting to a name with several addresses: staggered, racing
//! attempts in the manner of Happy Eyeballs v2 (RFC 8305, section 5).

use std::fmt::Write as _;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use coro_io::IoScheduler;

use super::TcpStream;
use super::stream::connect_one;

/// How long an attempt runs alone before the next address is tried too
/// (RFC 8305's recommended "Connection Attempt Delay").
pub(crate) const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

type Attempt<'a> = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + 'a>>;

/// Alternate address families, starting with the family of the first
/// address, keeping the resolver's order within each family.
pub(crate) fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return addrs;
    };
    let v6_first = first.is_ipv6();
    let (mut a, mut b): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|x| x.is_ipv6() == v6_first);
    a.reverse();
    b.reverse();
    let mut out = Vec::with_capacity(a.len() + b.len());
    loop {
        match (a.pop(), b.pop()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// Connect to the first of `addrs` that answers. An attempt starts every
/// `delay` while earlier ones are still pending, and at once when one
/// fails; the first to connect wins and the others are dropped (their
/// sockets closed). `what` names the target in the error, which lists
/// every address with its failure.
pub(crate) async fn race(
    sched: &IoScheduler,
    what: &str,
    addrs: Vec<SocketAddr>,
    delay: Duration,
) -> io::Result<TcpStream> {
    let mut next = addrs.into_iter();
    let mut running: Vec<(SocketAddr, Attempt<'_>)> = Vec::new();
    let mut failures: Vec<(SocketAddr, io::Error)> = Vec::new();
    let mut timer: Option<coro_io::time::Sleep> = None;
    let mut start_now = true;
    poll_fn(|cx| {
        loop {
            let mut i = 0;
            while i < running.len() {
                match running[i].1.as_mut().poll(cx) {
                    Poll::Ready(Ok(s)) => return Poll::Ready(Ok(s)),
                    Poll::Ready(Err(e)) => {
                        let (a, _) = running.swap_remove(i);
                        failures.push((a, e));
                        start_now = true;
                    }
                    Poll::Pending => i += 1,
                }
            }
            if let Some(t) = timer.as_mut() {
                if Pin::new(t).poll(cx).is_ready() {
                    timer = None;
                    start_now = true;
                }
            }
            if start_now {
                start_now = false;
                if let Some(a) = next.next() {
                    running.push((a, Box::pin(connect_one(sched, a))));
                    timer = Some(sched.sleep(delay));
                    // Poll the new attempt and timer so they can wake us.
                    continue;
                }
            }
            if running.is_empty() {
                return Poll::Ready(Err(all_failed(what, std::mem::take(&mut failures))));
            }
            return Poll::Pending;
        }
    })
    .await
}

/// The error of a connect whose every address failed: the last address's
/// error (its kind, and its OS error through `raw_os_error`), with all of
/// them named.
fn all_failed(what: &str, mut failures: Vec<(SocketAddr, io::Error)>) -> io::Error {
    let Some((last_addr, last)) = failures.pop() else {
        return io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("connect to {what}: no addresses to try"),
        );
    };
    let mut msg = format!("connect to {what}: ");
    if !failures.is_empty() {
        let _ = write!(msg, "all {} addresses failed: ", failures.len() + 1);
        for (a, e) in &failures {
            let _ = write!(msg, "{a}: {e}; ");
        }
    }
    let _ = write!(msg, "{last_addr}");
    crate::socket::context(last, msg)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::tcp::{ListenOptions, TcpListener};
    use coro_io::testing::Config;

    fn sched(cfg: Config) -> IoScheduler {
        cfg.sched()
    }

    fn block<T: Send + 'static>(s: &IoScheduler, f: impl Future<Output = T> + Send + 'static) -> T {
        let s2 = s.clone();
        coro_core::sync_wait(s.spawn(async move {
            s2.timeout(Duration::from_secs(20), f)
                .await
                .expect("test bound")
        }))
        .unwrap()
    }

    #[test]
    fn families_alternate() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let v = interleave(vec![
            a("[::1]:1"),
            a("[::2]:1"),
            a("[::3]:1"),
            a("10.0.0.1:1"),
        ]);
        assert_eq!(
            v,
            [a("[::1]:1"), a("10.0.0.1:1"), a("[::2]:1"), a("[::3]:1")]
        );
        assert!(interleave(Vec::new()).is_empty());
    }

    coro_io::driver_tests!(
        a_blackholed_address_is_raced_past,
        every_failure_is_listed,
        a_refused_address_falls_through_at_once,
    );

    /// A listener whose accept queue is full: the kernel drops new SYNs,
    /// so a connect to it hangs (a black hole, on loopback).
    fn full_listener(
        s: &IoScheduler,
        at: &str,
    ) -> std::io::Result<(TcpListener, Vec<std::net::TcpStream>)> {
        let l = TcpListener::bind_with(
            s,
            at,
            ListenOptions {
                backlog: 0,
                ..Default::default()
            },
        )?;
        let addr = l.local_addr().unwrap();
        let mut fill = Vec::new();
        for _ in 0..3 {
            let c = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                None,
            )
            .unwrap();
            c.set_nonblocking(true).unwrap();
            let _ = c.connect(&addr.into());
            fill.push(c.into());
        }
        Ok((l, fill))
    }

    fn a_blackholed_address_is_raced_past(cfg: Config) {
        let s = sched(cfg);
        // The black hole on [::1] if there is IPv6, else on 127.0.0.2
        // (always there on Linux: any other error is ours).
        let (hole, _fill) = match full_listener(&s, "[::1]:0") {
            Ok(hole) => hole,
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrNotAvailable
                    || crate::raw_os_error(&e) == Some(libc::EAFNOSUPPORT) =>
            {
                full_listener(&s, "127.0.0.2:0").unwrap()
            }
            Err(e) => panic!("{e}"),
        };
        let good = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
        let addrs = vec![hole.local_addr().unwrap(), good.local_addr().unwrap()];
        let s2 = s.clone();
        let (conn, waited) = block(&s, async move {
            let t0 = Instant::now();
            let c = race(&s2, "test", addrs, Duration::from_millis(100)).await;
            (c, t0.elapsed())
        });
        let conn = conn.unwrap();
        assert_eq!(conn.peer_addr().unwrap(), good.local_addr().unwrap());
        assert!(waited >= Duration::from_millis(90), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        drop(hole);
    }

    fn every_failure_is_listed(cfg: Config) {
        let s = sched(cfg);
        let addrs: Vec<SocketAddr> =
            vec!["127.0.0.1:1".parse().unwrap(), "[::1]:1".parse().unwrap()];
        let s2 = s.clone();
        let e = block(&s, async move {
            race(&s2, "example:1", addrs, ATTEMPT_DELAY).await
        })
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.starts_with("connect to example:1: all 2 addresses failed: "),
            "{m}"
        );
        assert!(m.contains("127.0.0.1:1: "), "{m}");
        assert!(m.contains("[::1]:1: "), "{m}");
        let s2 = s.clone();
        let e = block(&s, async move {
            race(&s2, "none", Vec::new(), ATTEMPT_DELAY).await
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    fn a_refused_address_falls_through_at_once(cfg: Config) {
        let s = sched(cfg);
        let good = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
        let addrs = vec!["127.0.0.1:1".parse().unwrap(), good.local_addr().unwrap()];
        let s2 = s.clone();
        let (c, waited) = block(&s, async move {
            let t0 = Instant::now();
            // A long delay: only the refusal may start the second attempt.
            let c = race(&s2, "test", addrs, Duration::from_secs(30)).await;
            (c, t0.elapsed())
        });
        c.unwrap();
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }
}
