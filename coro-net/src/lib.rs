//! coro-net: TCP, UDP, TLS (rustls) and DNS (c-ares) on the coro I/O scheduler.
//!
//! * [`lookup_host`]: `"host:port"` to socket addresses with the system
//!   resolver on the blocking pool (every build);
//! * `dns` (feature `dns`, off by default: it builds the vendored c-ares C
//!   library): an asynchronous resolver driven by the scheduler.
//!
//! Coming: `tcp`, `udp` and `tls`.
//!
//! # Features
//!
//! * `tls` (default): TLS on rustls.
//! * `dns`: `dns::Resolver` on c-ares (needs a C compiler and autotools).
#![doc(test(attr(deny(warnings))))]
#![deny(rustdoc::broken_intra_doc_links)]
#![forbid(unsafe_code)]

#[cfg(feature = "dns")]
pub mod dns;
mod lookup;

pub use lookup::lookup_host;
