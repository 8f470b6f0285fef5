//! Socket addresses (`std`'s IP `SocketAddr`, socket2's any-family
//! `SockAddr`) <-> `sockaddr_storage`.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// An owned, zeroed `sockaddr_storage` with its length.
#[derive(Clone, Copy)]
pub(crate) struct RawAddr {
    pub(crate) storage: libc::sockaddr_storage,
    pub(crate) len: libc::socklen_t,
}

impl std::fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAddr")
            .field("family", &self.storage.ss_family)
            .field("len", &self.len)
            .finish()
    }
}

impl RawAddr {
    /// Room for any address (for accept/recvfrom to fill).
    pub(crate) fn empty() -> RawAddr {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        RawAddr {
            storage,
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    pub(crate) fn from_socket_addr(addr: SocketAddr) -> RawAddr {
        let mut raw = RawAddr::empty();
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
                let sin = unsafe { &mut *(&mut raw.storage as *mut _ as *mut libc::sockaddr_in) };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr = libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                };
                raw.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
                let sin6 = unsafe { &mut *(&mut raw.storage as *mut _ as *mut libc::sockaddr_in6) };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr = libc::in6_addr {
                    s6_addr: a.ip().octets(),
                };
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_scope_id = a.scope_id();
                raw.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        raw
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const _ as *const libc::sockaddr
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        &mut self.storage as *mut _ as *mut libc::sockaddr
    }

    pub(crate) fn socket_addr(&self) -> io::Result<SocketAddr> {
        match self.storage.ss_family as libc::c_int {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let sin = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let sin6 = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            f => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsupported address family {f}"),
            )),
        }
    }
}

/// An address type a receive op can report as a datagram's source:
/// `std::net::SocketAddr` (IP) or `socket2::SockAddr` (any family, e.g. a
/// Unix-domain path). Sealed: the conversion is this crate's business.
pub trait Address: Sized + Send + 'static + sealed::Sealed {
    /// Read an address the kernel wrote (`len` bytes of `storage`).
    #[doc(hidden)]
    fn decode(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> io::Result<Self>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::net::SocketAddr {}
    impl Sealed for socket2::SockAddr {}
}

impl Address for SocketAddr {
    fn decode(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> io::Result<Self> {
        RawAddr {
            storage: *storage,
            len,
        }
        .socket_addr()
    }
}

const STORAGE_LEN: libc::socklen_t = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;

impl Address for socket2::SockAddr {
    fn decode(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> io::Result<Self> {
        let mut out = socket2::SockAddrStorage::zeroed();
        // SAFETY: `sockaddr_storage` is one of the platform's sockaddr types,
        // as `view_as` requires.
        unsafe { *out.view_as::<libc::sockaddr_storage>() = *storage };
        // SAFETY: the storage holds what the kernel wrote, of which `len`
        // bytes (clamped to the storage size) are the address.
        Ok(unsafe { socket2::SockAddr::new(out, len.min(STORAGE_LEN)) })
    }
}
