//! coro-net: TCP, UDP, TLS (rustls) and DNS (c-ares) on the coro I/O scheduler.
//!
//! Coming once `coro-io` has its scheduler: `tcp`, `udp`, `tls` and `dns`.
