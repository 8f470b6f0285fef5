//! [`TlsConnector`]: the client side of the handshake.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection};

use super::{DEFAULT_HANDSHAKE_TIMEOUT, TlsStream, tls_error};
use crate::tcp::TcpStream;

/// Turns connected [`TcpStream`]s into client-side [`TlsStream`]s with one
/// `rustls::ClientConfig` (trusted roots, ALPN, client certificate).
///
/// Cheap to clone (the config, and with it rustls' session cache for
/// resumption, is shared).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use coro_net::tls::{self, TlsConnector};
///
/// // Trust one CA certificate (a self-signed one here).
/// let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// let config = tls::client_config([ca.cert.der().clone()])?;
/// let connector = TlsConnector::new(Arc::new(config));
/// assert_eq!(connector.handshake_timeout(), std::time::Duration::from_secs(10));
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    timeout: Duration,
}

impl TlsConnector {
    /// A connector with `config` and the default 10 s handshake timeout.
    pub fn new(config: Arc<ClientConfig>) -> TlsConnector {
        TlsConnector {
            config,
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// The same connector with handshakes bounded by `timeout`
    /// (`Duration::MAX`: no bound).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> TlsConnector {
        self.timeout = timeout;
        self
    }

    /// The handshake bound.
    pub fn handshake_timeout(&self) -> Duration {
        self.timeout
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// Run the client side of a TLS handshake on `tcp`, verifying that the
    /// server's certificate is valid for `domain` (a DNS name, or an IP
    /// address literal), which is also sent as SNI (not for IPs).
    ///
    /// # Errors
    ///
    /// * `InvalidInput`: `domain` is not a valid DNS name or IP address;
    /// * `InvalidData`: the server's certificate is not trusted (unknown
    ///   CA), expired or not valid for `domain`, the server sent an alert,
    ///   or spoke no TLS; the message says which, and the `rustls::Error`
    ///   is the source ([`rustls_error`](super::rustls_error));
    /// * `TimedOut`: the handshake did not finish within the timeout;
    /// * `UnexpectedEof`: the server closed before the handshake finished;
    /// * socket errors as they are.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the connection (nothing else is left).
    pub async fn connect(&self, domain: &str, tcp: TcpStream) -> io::Result<TlsStream> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid TLS server name {domain:?}: {e}"),
            )
        })?;
        let peer = match tcp.peer_addr() {
            Ok(a) => format!("{domain} ({a})"),
            Err(_) => domain.to_owned(),
        };
        let conn = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| tls_error(&format!("TLS client setup for {peer}"), e))?;
        let mut stream = TlsStream::new(tcp, Connection::Client(conn));
        stream.handshake(self.timeout, &peer).await?;
        Ok(stream)
    }
}
