//! TLS on [rustls](https://docs.rs/rustls) (feature `tls`, on by default):
//! [`TlsAcceptor`], [`TlsConnector`], [`TlsStream`], PEM loading.
//!
//! rustls' `ServerConnection`/`ClientConnection` are driven directly over
//! our [`TcpStream`](crate::tcp::TcpStream) (no tokio-rustls): ciphertext
//! moves through owned buffers on the scheduler's driver (epoll or
//! io_uring), and rustls only ever sees in-memory slices.
//!
//! * [`TlsAcceptor::accept`] / [`TlsConnector::connect`]: the handshake,
//!   bounded by a timeout (default 10 s, `with_handshake_timeout`).
//!   TLS 1.2 and 1.3, ALPN, SNI, client certificates: whatever the rustls
//!   config says.
//! * [`TlsStream`]: owned-buffer `read`/`write`/`write_all`, `flush`,
//!   `shutdown` (close_notify), `futures_io::AsyncRead + AsyncWrite`, and
//!   what the handshake settled (ALPN protocol, SNI name, peer
//!   certificates, version, cipher suite).
//! * [`server_config`], [`client_config`], [`provider`]: rustls configs on
//!   the `ring` provider, passed explicitly (no process-wide default is
//!   installed or needed; `ring` builds with a C compiler, no cmake).
//! * [`load_certs`], [`load_private_key`]: PEM files, with errors that name
//!   the file and the problem.
//! * [`rustls_error`]: the `rustls::Error` behind an `io::Error`.
//!
//! The [`rustls`] crate is re-exported, so configs can be built with the
//! same version this crate uses.
//!
//! # Examples
//!
//! A server and a client on loopback, with a certificate made at run time:
//!
//! ```
//! use std::sync::Arc;
//! use coro_io::IoScheduler;
//! use coro_net::tcp::{TcpListener, TcpStream};
//! use coro_net::tls::{self, TlsAcceptor, TlsConnector};
//!
//! let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
//! let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
//! let mut server_cfg = tls::server_config(vec![cert.cert.der().clone()], key)?;
//! server_cfg.alpn_protocols = vec![b"echo/1".to_vec()];
//! let acceptor = TlsAcceptor::new(Arc::new(server_cfg));
//! let mut client_cfg = tls::client_config([cert.cert.der().clone()])?;
//! client_cfg.alpn_protocols = vec![b"echo/1".to_vec()];
//! let connector = TlsConnector::new(Arc::new(client_cfg));
//!
//! let sched = IoScheduler::new(Default::default())?;
//! let listener = TcpListener::bind(&sched, "127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let server = sched.spawn(async move {
//!     let (tcp, _) = listener.accept().await?;
//!     let tls = acceptor.accept(tcp).await?;
//!     assert_eq!(tls.server_name(), Some("localhost"));
//!     let (n, buf) = tls.read(Vec::with_capacity(64)).await;
//!     n?;
//!     let (r, _) = tls.write_all(buf).await; // echo it
//!     r?;
//!     tls.shutdown().await
//! });
//! let s = sched.clone();
//! let reply = coro_core::sync_wait(sched.spawn(async move {
//!     let tcp = TcpStream::connect(&s, addr).await?;
//!     let tls = connector.connect("localhost", tcp).await?;
//!     assert_eq!(tls.alpn_protocol(), Some(&b"echo/1"[..]));
//!     let (r, _) = tls.write_all(b"ping".as_slice()).await;
//!     r?;
//!     let (n, buf) = tls.read(Vec::with_capacity(64)).await;
//!     n?;
//!     // The server's close_notify: a clean end of stream.
//!     let (end, _) = tls.read(Vec::with_capacity(64)).await;
//!     assert_eq!(end?, 0);
//!     std::io::Result::Ok(buf)
//! }))
//! .unwrap()?;
//! assert_eq!(reply, b"ping");
//! coro_core::sync_wait(server).unwrap()?;
//! # std::io::Result::Ok(())
//! ```
//!
//! # End of stream and truncation
//!
//! A read returns `Ok(0)` only after the peer's close_notify; a TCP close
//! without one is an `UnexpectedEof` error, never a silent short read.
//! Call [`TlsStream::shutdown`] before dropping a stream whose peer must
//! know the data is complete.
//!
//! # Handshakes and stalled peers
//!
//! Run each handshake in its own task (see [`TlsAcceptor`]): the timeout
//! then cuts a stalling client off without holding up anyone else. A peer
//! that sends close_notify in the middle of a handshake gets an error, not
//! a spinning task (the bug of RUSTSEC-2024-0336 elsewhere).
//!
//! # Cancel safety
//!
//! All TLS state (the rustls connection, undecrypted ciphertext, the
//! in-flight `recv` and `send` with their buffers) lives in the
//! [`TlsStream`], so a dropped read loses no bytes, on io_uring too; each
//! method documents the details.
//!
//! # PEM parsing: why `rustls-pki-types`
//!
//! PEM files are parsed with `rustls::pki_types::pem::PemObject`, the PEM
//! code that has lived in `rustls-pki-types` since 1.9. The older
//! `rustls-pemfile` crate is archived (since August 2025) and flagged
//! unmaintained by RUSTSEC-2025-0134, which points to `PemObject` as its
//! replacement (its last releases were a thin wrapper around the same
//! code). No extra dependency is needed: the types come with rustls.

mod acceptor;
mod connector;
mod pem;
mod stream;

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

pub use acceptor::TlsAcceptor;
pub use connector::TlsConnector;
pub use pem::{load_certs, load_private_key};
pub use rustls;
pub use stream::TlsStream;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Handshake bound of a new [`TlsAcceptor`] or [`TlsConnector`].
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// rustls' `ring` crypto provider with its default cipher suites and key
/// exchange groups (TLS 1.3 and 1.2 suites, X25519/P-256/P-384).
///
/// Pass it to `ServerConfig::builder_with_provider` /
/// `ClientConfig::builder_with_provider` to build configs by hand.
///
/// # Examples
///
/// ```
/// let config = rustls::ServerConfig::builder_with_provider(coro_net::tls::provider())
///     .with_protocol_versions(&[&rustls::version::TLS13])
///     .unwrap()
///     .with_no_client_auth();
/// # let _ = config;
/// ```
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config on the [`provider`]: TLS 1.2 and 1.3, no client
/// authentication, presenting `chain` (leaf first) signed by `key`. Set
/// `alpn_protocols` or other fields on the result before wrapping it in an
/// `Arc`; for client certificates build the config by hand with a
/// `rustls::server::WebPkiClientVerifier`. (Early data is refused
/// whatever `max_early_data_size` says: see [`TlsAcceptor::accept`].)
///
/// # Errors
///
/// `InvalidData` (rustls error as the source) when the key does not match
/// the certificate or is unsupported, or the chain is empty.
///
/// # Examples
///
/// See the [module docs](self).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<ServerConfig> {
    if chain.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "TLS server config: the certificate chain is empty",
        ));
    }
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("TLS server config", e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_error("TLS server config", e))
}

/// A client config on the [`provider`]: TLS 1.2 and 1.3, trusting exactly
/// the CA certificates in `roots`, no client certificate.
///
/// # Errors
///
/// `InvalidData` when a root is not a parsable CA certificate, or `roots`
/// is empty.
///
/// # Examples
///
/// See [`TlsConnector`].
pub fn client_config(
    roots: impl IntoIterator<Item = CertificateDer<'static>>,
) -> io::Result<ClientConfig> {
    let mut store = RootCertStore::empty();
    for c in roots {
        store
            .add(c)
            .map_err(|e| tls_error("TLS client config: bad root certificate", e))?;
    }
    if store.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "TLS client config: no trusted root certificates",
        ));
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("TLS client config", e))?
        .with_root_certificates(store)
        .with_no_client_auth())
}

/// The `rustls::Error` behind an error of this module (a failed handshake,
/// a bad record, an alert from the peer), if it is one.
///
/// # Examples
///
/// ```
/// let e = std::io::Error::other("not a TLS error");
/// assert!(coro_net::tls::rustls_error(&e).is_none());
/// ```
pub fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<TlsFailure>())
        .map(|f| &f.source)
}

/// An `io::Error` payload: what failed, and the rustls error (its source).
#[derive(Debug)]
pub(crate) struct TlsFailure {
    pub(crate) context: String,
    pub(crate) source: rustls::Error,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl std::error::Error for TlsFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// `InvalidData` with `context` and `e` as the source.
pub(crate) fn tls_error(context: &str, e: rustls::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        TlsFailure {
            context: context.to_owned(),
            source: e,
        },
    )
}
