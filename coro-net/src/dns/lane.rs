//! A lane: one c-ares channel, used by one lookup at a time, and the sockets
//! c-ares asked us to watch for it.
//!
//! c-ares can only cancel *all* queries of a channel (`ares_cancel`), so a
//! lookup future that is dropped can only be cancelled inside c-ares if it
//! has its channel to itself. The resolver keeps a stack of idle lanes; a
//! lookup takes one (or creates one), and gives it back when it completes or
//! after cancelling on drop.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};

use c_ares::{Channel, Options};
use coro_io::driver::Handle;

use super::{Config, Error};

/// One socket c-ares wants watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sock {
    pub(crate) fd: RawFd,
    pub(crate) read: bool,
    pub(crate) write: bool,
    /// Distinguishes a socket from a later one that reuses its fd number.
    pub(crate) epoch: u64,
}

/// The socket table the socket-state callback maintains.
#[derive(Debug, Default)]
pub(crate) struct Socks {
    pub(crate) list: Vec<Sock>,
    next_epoch: u64,
}

impl Socks {
    /// Apply one socket-state notification. Returns true when the socket is
    /// no longer watched (c-ares is about to close it).
    fn update(&mut self, fd: RawFd, read: bool, write: bool) -> bool {
        let pos = self.list.iter().position(|s| s.fd == fd);
        if !read && !write {
            if let Some(i) = pos {
                self.list.swap_remove(i);
            }
            return true;
        }
        match pos {
            Some(i) => {
                self.list[i].read = read;
                self.list[i].write = write;
            }
            None => {
                self.next_epoch += 1;
                self.list.push(Sock {
                    fd,
                    read,
                    write,
                    epoch: self.next_epoch,
                });
            }
        }
        false
    }
}

pub(crate) fn lock(socks: &Mutex<Socks>) -> MutexGuard<'_, Socks> {
    socks.lock().unwrap_or_else(|e| e.into_inner())
}

/// The socket-state callback: `table` follows c-ares' sockets, and one
/// going away is released from `driver` now, before c-ares closes it (the
/// epoll driver keeps one registration per fd number: released later,
/// after the close, it could release a new socket's registration there).
///
/// Releasing wakes the wakers waiting on the fd, here inside c-ares. A
/// waker's panic cannot leave: the c-ares crate aborts the process on a
/// panicking callback. Every waker has been woken by then (`wake_all`), so
/// the panic stops here: the only thing lost is the foreign executor's own
/// complaint, not a wake-up.
fn socket_state(table: &Mutex<Socks>, driver: &Handle, fd: RawFd, read: bool, write: bool) {
    let gone = lock(table).update(fd, read, write);
    if gone {
        let released =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.release_fd(fd)));
        // Not dropped: a payload whose own drop panics would abort here too.
        if let Err(payload) = released {
            std::mem::forget(payload);
        }
    }
}

/// A c-ares channel and its socket table.
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) channel: Channel,
    pub(crate) socks: Arc<Mutex<Socks>>,
    /// The servers c-ares asks (at least 1: with none configured it asks
    /// 127.0.0.1:53).
    pub(crate) servers: usize,
    /// The version of `resolv.conf` the channel was configured from.
    pub(crate) stamp: super::Stamp,
}

impl Lane {
    /// A fresh channel configured from `cfg`, reporting its sockets to a
    /// table of its own. `driver` forgets an fd before c-ares closes it (the
    /// epoll driver keeps one registration per fd number).
    pub(crate) fn new(cfg: &Config, driver: &Handle, stamp: super::Stamp) -> Result<Lane, Error> {
        let socks = Arc::new(Mutex::new(Socks::default()));
        let table = socks.clone();
        let driver = driver.clone();
        let mut o = Options::new();
        // c-ares only calls this from inside our own calls into the channel
        // (no event thread), "told first, closed second". It must not panic:
        // the c-ares crate aborts on a panicking callback.
        o.set_socket_state_callback(move |fd, read, write| {
            socket_state(&table, &driver, fd, read, write)
        });
        o.set_timeout(cfg.timeout)
            // The per-try timeout does not grow between rounds: `timeout`
            // x `tries` (per server) bounds a lookup.
            .set_max_timeout(cfg.timeout)
            .set_tries(cfg.tries)
            // No query cache (c-ares keeps one per channel by default, up
            // to an hour per answer, freed only when that channel is used
            // again): each lane would hold its own copy of every answer,
            // a server looking up each client's address would grow by
            // every one, and a lookup is expected to ask (as
            // `getaddrinfo` and tokio's `lookup_host` do).
            .set_query_cache_max_ttl(0);
        if cfg.rotate {
            o.set_rotate();
        } else {
            o.set_no_rotate();
        }
        o.set_lookups(if cfg.hosts_file { "fb" } else { "b" })?;
        if let Some(p) = &cfg.hosts_path {
            o.set_hosts_path(p)?;
        }
        if let Some(p) = &cfg.resolv_conf_path {
            o.set_resolvconf_path(p)?;
        }
        let mut channel = Channel::with_options(o)?;
        if !cfg.servers.is_empty() {
            channel.set_servers(&cfg.servers)?;
        }
        let servers = channel.servers().len().max(1);
        Ok(Lane {
            channel,
            socks,
            servers,
            stamp,
        })
    }

    /// Whether the lane can serve another lookup: no query left in c-ares.
    pub(crate) fn is_idle(&self) -> bool {
        self.channel.queue_active_queries() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    struct Panics;
    impl std::task::Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("this waker fails");
        }
    }

    /// c-ares closes a socket a lookup's watcher waits on (inside
    /// `process_fds` or `cancel`): on epoll the release wakes that waker,
    /// inside c-ares' callback. One that panicked there aborted the whole
    /// process (the c-ares crate aborts on a panicking callback).
    #[test]
    fn a_socket_released_under_a_panicking_waker_does_not_unwind_into_c_ares() {
        let sched = coro_io::IoScheduler::new(coro_io::IoSchedulerOptions {
            driver: coro_io::DriverKind::Epoll,
            ..Default::default()
        })
        .unwrap();
        let driver = sched.driver().clone();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
        let table = Mutex::new(Socks::default());
        socket_state(&table, &driver, fd, true, false);
        let mut watch = coro_io::op::poll_fd(&driver, fd, coro_io::driver::Interest::Read);
        let waker = std::task::Waker::from(Arc::new(Panics));
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(std::pin::Pin::new(&mut watch).poll(&mut cx).is_pending());
        // c-ares tells us it is about to close the socket.
        let released = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            socket_state(&table, &driver, fd, false, false)
        }));
        assert!(released.is_ok(), "the waker's panic left the callback");
        assert!(lock(&table).list.is_empty());
        drop(watch);
        sched.shutdown();
    }

    #[test]
    fn table_tracks_interest_and_epochs() {
        let mut t = Socks::default();
        assert!(!t.update(7, true, false));
        let first = t.list[0];
        assert!(!t.update(7, true, true));
        assert_eq!(t.list.len(), 1);
        assert!(t.list[0].write);
        assert_eq!(t.list[0].epoch, first.epoch);
        assert!(t.update(7, false, false));
        assert!(t.list.is_empty());
        // The fd number comes back for a new socket: a new epoch.
        assert!(!t.update(7, true, false));
        assert_ne!(t.list[0].epoch, first.epoch);
        // Unknown fd going away: still reported as gone, table unchanged.
        assert!(t.update(9, false, false));
        assert_eq!(t.list.len(), 1);
    }
}
