//! Socket address arguments: [`ToSocketAddrs`].
//!
//! Like `std::net::ToSocketAddrs`, but a host name is never resolved on the
//! event-loop thread: async callers ([`TcpStream::connect`](crate::tcp::TcpStream::connect),
//! [`UdpSocket::connect`](crate::udp::UdpSocket::connect)) resolve it with
//! `getaddrinfo` on the blocking pool. Literal addresses never touch it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Something that names one or more socket addresses: a [`SocketAddr`], an
/// `(ip, port)` pair, a `"host:port"` string or a `(host, port)` pair.
///
/// Implemented for the same types as `std::net::ToSocketAddrs`; sealed.
///
/// # Examples
///
/// ```
/// use coro_net::ToSocketAddrs;
/// fn takes(_: impl ToSocketAddrs) {}
/// takes("127.0.0.1:8080");
/// takes(([127, 0, 0, 1], 8080));
/// takes(("localhost", 8080));
/// takes(std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
/// ```
pub trait ToSocketAddrs: sealed::Sealed {}

pub(crate) mod sealed {
    use super::*;

    /// How to get the addresses: already known, or a name to look up.
    #[derive(Debug)]
    pub enum Addrs {
        /// Literal addresses (or a parse error).
        Ready(io::Result<Vec<SocketAddr>>),
        /// `"host:port"` for getaddrinfo.
        Lookup(String),
    }

    pub trait Sealed {
        fn addrs(&self) -> Addrs;
        /// The one address, when it is known without a lookup (and so
        /// without building a list: a `send_to` per datagram asks).
        fn single(&self) -> Option<SocketAddr> {
            None
        }
    }
}

use sealed::{Addrs, Sealed};

impl<T: Sealed + ?Sized> ToSocketAddrs for T {}

fn ready(a: SocketAddr) -> Addrs {
    Addrs::Ready(Ok(vec![a]))
}

impl Sealed for SocketAddr {
    fn addrs(&self) -> Addrs {
        ready(*self)
    }
    fn single(&self) -> Option<SocketAddr> {
        Some(*self)
    }
}
impl Sealed for SocketAddrV4 {
    fn addrs(&self) -> Addrs {
        ready((*self).into())
    }
    fn single(&self) -> Option<SocketAddr> {
        Some((*self).into())
    }
}
impl Sealed for SocketAddrV6 {
    fn addrs(&self) -> Addrs {
        ready((*self).into())
    }
    fn single(&self) -> Option<SocketAddr> {
        Some((*self).into())
    }
}
macro_rules! ip_pair {
    ($($t:ty),*) => {$(
        impl Sealed for ($t, u16) {
            fn addrs(&self) -> Addrs {
                ready(SocketAddr::new(self.0.into(), self.1))
            }
            fn single(&self) -> Option<SocketAddr> {
                Some(SocketAddr::new(self.0.into(), self.1))
            }
        }
    )*};
}
ip_pair!(IpAddr, Ipv4Addr, Ipv6Addr, [u8; 4], [u16; 8], [u8; 16]);
impl Sealed for [SocketAddr] {
    fn addrs(&self) -> Addrs {
        Addrs::Ready(Ok(self.to_vec()))
    }
}
impl<const N: usize> Sealed for [SocketAddr; N] {
    fn addrs(&self) -> Addrs {
        Addrs::Ready(Ok(self.to_vec()))
    }
}
impl Sealed for Vec<SocketAddr> {
    fn addrs(&self) -> Addrs {
        Addrs::Ready(Ok(self.clone()))
    }
}
impl Sealed for str {
    fn addrs(&self) -> Addrs {
        match self.parse::<SocketAddr>() {
            Ok(a) => ready(a),
            Err(_) => Addrs::Lookup(self.to_owned()),
        }
    }
    fn single(&self) -> Option<SocketAddr> {
        self.parse().ok()
    }
}
impl Sealed for String {
    fn addrs(&self) -> Addrs {
        self.as_str().addrs()
    }
    fn single(&self) -> Option<SocketAddr> {
        self.as_str().single()
    }
}
impl Sealed for (&str, u16) {
    fn addrs(&self) -> Addrs {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => ready(SocketAddr::new(ip, self.1)),
            Err(_) => Addrs::Lookup(format!("{}:{}", self.0, self.1)),
        }
    }
}
impl Sealed for (String, u16) {
    fn addrs(&self) -> Addrs {
        (self.0.as_str(), self.1).addrs()
    }
}
impl<T: Sealed + ?Sized> Sealed for &T {
    fn addrs(&self) -> Addrs {
        (**self).addrs()
    }
    fn single(&self) -> Option<SocketAddr> {
        (**self).single()
    }
}

fn non_empty(v: Vec<SocketAddr>, what: &str) -> io::Result<Vec<SocketAddr>> {
    if v.is_empty() {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}: no addresses to use"),
        ))
    } else {
        Ok(v)
    }
}

fn lookup_blocking(host: &str) -> io::Result<Vec<SocketAddr>> {
    std::net::ToSocketAddrs::to_socket_addrs(host)
        .map(|it| it.collect())
        .map_err(|e| crate::socket::context(e, format_args!("resolve {host:?}")))
}

/// How to name `addr` in an error message.
pub(crate) fn describe(addr: &(impl ToSocketAddrs + ?Sized)) -> String {
    match addr.addrs() {
        Addrs::Ready(Ok(v)) if v.len() == 1 => v[0].to_string(),
        Addrs::Ready(Ok(v)) => format!("{v:?}"),
        Addrs::Ready(Err(e)) => format!("(bad address: {e})"),
        Addrs::Lookup(host) => host,
    }
}

/// Resolve on this thread (for the synchronous `bind`s): a host name blocks
/// in `getaddrinfo`.
pub(crate) fn resolve_now(addr: &(impl ToSocketAddrs + ?Sized)) -> io::Result<Vec<SocketAddr>> {
    match addr.addrs() {
        Addrs::Ready(r) => non_empty(r?, "address"),
        Addrs::Lookup(host) => non_empty(lookup_blocking(&host)?, &host),
    }
}

/// Resolve without blocking the event loop: host names go to the blocking pool.
pub(crate) async fn resolve(addr: &(impl ToSocketAddrs + ?Sized)) -> io::Result<Vec<SocketAddr>> {
    match addr.addrs() {
        Addrs::Ready(r) => non_empty(r?, "address"),
        Addrs::Lookup(host) => {
            let h = host.clone();
            let r = coro_io::spawn_blocking(move || lookup_blocking(&h))
                .await
                .map_err(|e| io::Error::other(format!("resolve {host:?}: {e}")))??;
            non_empty(r, &host)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_need_no_lookup() {
        for a in [
            "127.0.0.1:80".addrs(),
            ("::1", 80).addrs(),
            (Ipv4Addr::LOCALHOST, 80).addrs(),
            SocketAddr::from(([127, 0, 0, 1], 80)).addrs(),
        ] {
            assert!(
                matches!(a, Addrs::Ready(Ok(ref v)) if v.len() == 1),
                "{a:?}"
            );
        }
        assert!(matches!("localhost:80".addrs(), Addrs::Lookup(h) if h == "localhost:80"));
        assert!(matches!(("localhost", 80).addrs(), Addrs::Lookup(h) if h == "localhost:80"));
    }

    #[test]
    fn empty_and_bad_inputs_are_clear_errors() {
        let e = resolve_now(&Vec::<SocketAddr>::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = resolve_now("no-port-here").unwrap_err();
        assert!(e.to_string().contains("no-port-here"), "{e}");
    }

    #[test]
    fn localhost_resolves_on_the_blocking_pool() {
        let v = coro_core::sync_wait(resolve(&("localhost", 9))).unwrap();
        assert!(
            v.iter().all(|a| a.ip().is_loopback() && a.port() == 9),
            "{v:?}"
        );
    }
}
