//! coro-net: TCP, UDP and Unix-domain sockets, TLS and DNS on the coro I/O
//! scheduler.
//!
//! * [`tcp`]: [`TcpListener`](tcp::TcpListener) (bind, accept that survives
//!   fd exhaustion), [`TcpStream`](tcp::TcpStream) (connect, timeouts,
//!   owned-buffer I/O, `futures_io` traits, socket options).
//! * [`udp`]: [`UdpSocket`](udp::UdpSocket), with truncation reporting.
//! * [`unix`]: [`UnixListener`](unix::UnixListener) and
//!   [`UnixStream`](unix::UnixStream), the same API over Unix-domain sockets.
//! * [`ToSocketAddrs`]: address arguments; host names are resolved off the
//!   event loop.
//! * [`lookup_host`]: `"host:port"` to socket addresses with the system
//!   resolver on the blocking pool (every build);
//!   [`TcpStream::connect_host`](tcp::TcpStream::connect_host) resolves
//!   and connects, racing the addresses (happy eyeballs).
//! * `tls` (feature `tls`, default): `TlsAcceptor`, `TlsConnector`,
//!   `TlsStream` on rustls, PEM loading.
//! * `dns` (feature `dns`): an asynchronous resolver on c-ares, driven by
//!   the scheduler.
//!
//! Every socket belongs to the [`IoScheduler`](coro_io::IoScheduler) it was
//! made with and runs on its driver (epoll or io_uring); it may be used from
//! any of that scheduler's tasks (or from outside, e.g. `sync_wait`).
//!
//! I/O takes **owned buffers** (`Vec<u8>`, `Box<[u8]>`, `BytesMut`,
//! `&'static [u8]`, see [`coro_io::buf`]) and hands them back with the
//! result, `(io::Result<T>, B)`: that is what lets io_uring own the memory
//! while the kernel uses it. Each async method says how it behaves when its
//! future is dropped (`# Cancel safety`).
//!
//! # Examples
//!
//! ```
//! use coro_io::IoScheduler;
//! use coro_net::tcp::{TcpListener, TcpStream};
//!
//! let sched = IoScheduler::new(Default::default())?;
//! let listener = TcpListener::bind(&sched, "127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let server = sched.spawn(async move {
//!     let (conn, peer) = listener.accept().await?;
//!     conn.write_all(format!("hello {}", peer.ip()).into_bytes()).await.0
//! });
//! let s = sched.clone();
//! let reply = coro_core::sync_wait(sched.spawn(async move {
//!     let c = TcpStream::connect(&s, addr).await?;
//!     let (n, buf) = c.read(Vec::with_capacity(64)).await;
//!     n.map(|_| String::from_utf8_lossy(&buf).into_owned())
//! }))
//! .unwrap()?;
//! assert_eq!(reply, "hello 127.0.0.1");
//! coro_core::sync_wait(server).unwrap()?;
//! # std::io::Result::Ok(())
//! ```
//!
//! # Features
//!
//! * `tls` (default): the `tls` module, on rustls with the `ring` provider
//!   (needs a C compiler, not cmake).
//! * `dns`: `dns::Resolver` on vendored c-ares (builds C code: needs a C
//!   compiler and autotools).
//! * `hyper`: the `hyper` module, hyper 1.x's runtime traits on coro.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]
#![deny(rustdoc::broken_intra_doc_links)]
#![forbid(unsafe_code)]

mod addr;
mod dgram;
#[cfg(feature = "dns")]
#[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
pub mod dns;
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub mod hyper;
mod lookup;
mod socket;
pub mod split;
pub mod tcp;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;
pub mod udp;
pub mod unix;

pub use addr::ToSocketAddrs;
pub use lookup::lookup_host;

/// The OS error code (`errno`) of `e` or of an error it wraps: coro-net's
/// errors say what was being done (`connect to 127.0.0.1:80: Connection
/// refused`) around the kernel's error, so `e.raw_os_error()` is `None`
/// there; this looks through the wrapping, where tokio code would call
/// `raw_os_error()` on the bare error.
///
/// # Examples
///
/// ```
/// # coro_core::sync_wait(async {
/// let sched = coro_io::IoScheduler::new(Default::default()).unwrap();
/// // Nothing listens on a port just freed.
/// let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
/// let e = coro_net::tcp::TcpStream::connect(&sched, port).await.unwrap_err();
/// assert_eq!(e.raw_os_error(), None);
/// assert_eq!(coro_net::raw_os_error(&e), Some(libc::ECONNREFUSED));
/// # });
/// ```
pub fn raw_os_error(e: &std::io::Error) -> Option<i32> {
    let mut cur = e;
    loop {
        if let Some(code) = cur.raw_os_error() {
            return Some(code);
        }
        let inner = cur.get_ref()?;
        if let Some(w) = inner.downcast_ref::<socket::DoingWhat>() {
            cur = &w.source;
            continue;
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            cur = io;
            continue;
        }
        // Another error type: the first `io::Error` among its sources.
        let mut src = inner.source();
        cur = loop {
            let s = src?;
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                break io;
            }
            src = s.source();
        };
    }
}
