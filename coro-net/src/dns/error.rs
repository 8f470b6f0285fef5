//! [`Error`]: why a lookup failed.

use std::fmt;
use std::io;

/// Why a DNS lookup (or creating a [`Resolver`](super::Resolver)) failed.
///
/// `#[non_exhaustive]`: match with a `_` arm. Converts into [`io::Error`]
/// (with this error as its source, so `downcast_ref::<dns::Error>()` gets it
/// back) for code that deals in `io::Result`.
///
/// # Examples
///
/// ```
/// use coro_net::dns::Error;
/// use std::io;
///
/// let e: io::Error = Error::NotFound.into();
/// assert_eq!(e.kind(), io::ErrorKind::NotFound);
/// assert_eq!(e.get_ref().and_then(|s| s.downcast_ref::<Error>()), Some(&Error::NotFound));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The name does not exist (NXDOMAIN), in DNS and in the hosts file.
    NotFound,
    /// The name exists but has no record of the requested type (NODATA).
    NoData,
    /// No server answered in time: every try (`tries` per server) waited
    /// its turn (at most `timeout` each, see
    /// [`ResolverOptions::timeout`](super::ResolverOptions::timeout)).
    Timeout,
    /// The server refused the query (rcode REFUSED).
    Refused,
    /// The server failed to answer (rcode SERVFAIL).
    ServFail,
    /// The name is not a valid host name (empty, a label longer than 63
    /// bytes or empty, longer than 253 bytes, or characters other than
    /// ASCII letters, digits, `-` and `_`; internationalised names must be
    /// given in their `xn--` form).
    BadName,
    /// No server could be reached (the connection was refused, e.g. nothing
    /// listens on the server's port). c-ares also reports so a socket it
    /// could not open: when the process is out of file descriptors
    /// (`EMFILE`), a lookup fails with this too.
    ConnectionRefused,
    /// The server's answer was malformed, or it could not parse our query
    /// (FORMERR) or does not implement it (NOTIMP).
    BadResponse,
    /// No DNS server is configured. Rare: with no `nameserver` in the
    /// configuration c-ares asks 127.0.0.1:53, as glibc does.
    NoServers,
    /// The [`IoScheduler`](coro_io::IoScheduler) the resolver runs on was shut down.
    Shutdown,
    /// The [`ResolverOptions`](super::ResolverOptions) are invalid (the text says which).
    InvalidOptions(String),
    /// Any other c-ares failure (out of memory, unreadable configuration, ...).
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("name not found"),
            Error::NoData => f.write_str("name has no record of the requested type"),
            Error::Timeout => f.write_str("dns query timed out"),
            Error::Refused => f.write_str("dns server refused the query"),
            Error::ServFail => f.write_str("dns server failed to answer (servfail)"),
            Error::BadName => f.write_str("invalid host name"),
            Error::ConnectionRefused => f.write_str("could not contact any dns server"),
            Error::BadResponse => f.write_str("malformed or unusable dns response"),
            Error::NoServers => f.write_str("no dns servers configured"),
            Error::Shutdown => f.write_str("the i/o scheduler was shut down"),
            Error::InvalidOptions(why) => write!(f, "invalid resolver options: {why}"),
            Error::Other(why) => write!(f, "dns lookup failed: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The [`io::ErrorKind`] this error converts to.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_net::dns::Error;
    /// assert_eq!(Error::Timeout.kind(), std::io::ErrorKind::TimedOut);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::NotFound | Error::NoData => io::ErrorKind::NotFound,
            Error::Timeout => io::ErrorKind::TimedOut,
            Error::Refused | Error::ConnectionRefused => io::ErrorKind::ConnectionRefused,
            Error::BadName | Error::InvalidOptions(_) => io::ErrorKind::InvalidInput,
            Error::BadResponse => io::ErrorKind::InvalidData,
            Error::ServFail | Error::NoServers | Error::Shutdown | Error::Other(_) => {
                io::ErrorKind::Other
            }
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

impl From<c_ares::Error> for Error {
    fn from(e: c_ares::Error) -> Error {
        use c_ares::Error as A;
        match e {
            A::ENOTFOUND | A::ENONAME => Error::NotFound,
            A::ENODATA => Error::NoData,
            A::ETIMEOUT => Error::Timeout,
            A::EREFUSED => Error::Refused,
            A::ESERVFAIL => Error::ServFail,
            A::EBADNAME | A::EBADSTR => Error::BadName,
            A::ECONNREFUSED => Error::ConnectionRefused,
            A::EBADRESP | A::EFORMERR | A::ENOTIMP | A::EOF => Error::BadResponse,
            A::ENOSERVER => Error::NoServers,
            other => Error::Other(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_ares_codes_map_to_variants() {
        assert_eq!(Error::from(c_ares::Error::ENOTFOUND), Error::NotFound);
        assert_eq!(Error::from(c_ares::Error::ENODATA), Error::NoData);
        assert_eq!(Error::from(c_ares::Error::ETIMEOUT), Error::Timeout);
        assert_eq!(Error::from(c_ares::Error::EREFUSED), Error::Refused);
        assert_eq!(Error::from(c_ares::Error::ESERVFAIL), Error::ServFail);
        assert_eq!(Error::from(c_ares::Error::EBADNAME), Error::BadName);
        assert!(matches!(
            Error::from(c_ares::Error::ENOMEM),
            Error::Other(s) if !s.is_empty()
        ));
    }

    #[test]
    fn io_conversion_keeps_the_error() {
        let e: io::Error = Error::Refused.into();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        let inner = e.into_inner().expect("source kept");
        assert_eq!(*inner.downcast::<Error>().unwrap(), Error::Refused);
    }

    #[test]
    fn display_is_lowercase() {
        for e in [
            Error::NotFound,
            Error::Timeout,
            Error::BadName,
            Error::ServFail,
        ] {
            let s = e.to_string();
            assert!(s.chars().next().unwrap().is_lowercase(), "{s}");
        }
    }
}
