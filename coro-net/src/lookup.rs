//! [`lookup_host`]: `"host:port"` to socket addresses, in every build.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use coro_io::IoScheduler;

/// Resolve `"host:port"` (or `"[v6]:port"`) to socket addresses with the
/// system resolver (`getaddrinfo`: hosts file, DNS, whatever nsswitch says),
/// run on the blocking pool ([`coro_io::spawn_blocking`]) so no I/O thread
/// blocks. Address literals (`"127.0.0.1:80"`, `"[::1]:80"`) are parsed
/// without leaving the calling task.
///
/// Available without the `dns` feature. With it,
/// `dns::Resolver` resolves on the scheduler itself
/// (c-ares) and can be pointed at chosen servers.
///
/// # Errors
///
/// `InvalidInput` when `host` has no `:port`, or the port is not a number;
/// the `getaddrinfo` failure otherwise (e.g. an unknown name); `NotFound`
/// for an empty answer; `Other` when `sched` was shut down.
///
/// # Cancel safety
///
/// `getaddrinfo` cannot be interrupted: if the future is dropped, the call
/// finishes on its pool thread and its result is discarded. Nothing else is
/// left behind.
///
/// # Examples
///
/// ```
/// use coro_io::IoScheduler;
///
/// let sched = IoScheduler::new(Default::default())?;
/// let addrs = coro_core::sync_wait(coro_net::lookup_host(&sched, "127.0.0.1:8080"))?;
/// assert_eq!(addrs, ["127.0.0.1:8080".parse().unwrap()]);
/// let addrs = coro_core::sync_wait(coro_net::lookup_host(&sched, "localhost:80"))?;
/// assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
/// # std::io::Result::Ok(())
/// ```
pub async fn lookup_host(sched: &IoScheduler, host: &str) -> io::Result<Vec<SocketAddr>> {
    if let Ok(addr) = host.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    if sched.is_shutdown() {
        return Err(crate::socket::shut_down());
    }
    let owned = host.to_owned();
    let job = coro_io::spawn_blocking(move || {
        owned
            .as_str()
            .to_socket_addrs()
            .map(|it| it.collect::<Vec<_>>())
    });
    let addrs = job.await.map_err(io::Error::other)??;
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no addresses for {host}"),
        ));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched() -> IoScheduler {
        IoScheduler::new(Default::default()).unwrap()
    }

    #[test]
    fn literals_and_localhost() {
        let s = sched();
        let v = coro_core::sync_wait(lookup_host(&s, "[::1]:53")).unwrap();
        assert_eq!(v, ["[::1]:53".parse().unwrap()]);
        let v = coro_core::sync_wait(lookup_host(&s, "localhost:7")).unwrap();
        assert!(!v.is_empty());
        assert!(v.iter().all(|a| a.ip().is_loopback() && a.port() == 7));
    }

    #[test]
    fn missing_port_is_invalid_input() {
        let s = sched();
        for bad in [
            "localhost",
            "localhost:",
            "localhost:http",
            "localhost:99999",
        ] {
            let e = coro_core::sync_wait(lookup_host(&s, bad)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
        }
    }

    #[test]
    fn after_shutdown_is_an_error_not_a_hang() {
        let s = sched();
        s.shutdown();
        // Bounded by a plain thread: the regression is a hang.
        let (tx, rx) = std::sync::mpsc::channel();
        let s2 = s.clone();
        std::thread::spawn(move || {
            let _ = tx.send(coro_core::sync_wait(lookup_host(&s2, "localhost:1")).map(drop));
        });
        let e = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a lookup after shutdown hung")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Other);
        // Literals still parse: no scheduler work is needed.
        assert!(coro_core::sync_wait(lookup_host(&s, "127.0.0.1:1")).is_ok());
    }
}
