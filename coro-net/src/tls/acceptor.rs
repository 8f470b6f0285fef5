//! [`TlsAcceptor`]: the server side of the handshake.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::{Connection, ServerConfig, ServerConnection};

use super::{DEFAULT_HANDSHAKE_TIMEOUT, TlsStream, tls_error};
use crate::tcp::TcpStream;

/// Turns accepted [`TcpStream`]s into server-side [`TlsStream`]s with one
/// `rustls::ServerConfig` (certificates, ALPN, client authentication).
///
/// Cheap to clone (the config is shared).
///
/// **Run each handshake in its own task** (spawn per accepted
/// connection, as in the example below): a handshake waits for the
/// client, and a client that stalls must not hold up the accept loop. The
/// handshake timeout (default 10 s) cuts such clients off.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use coro_net::tcp::TcpListener;
/// use coro_net::tls::{self, TlsAcceptor};
///
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// let config = tls::server_config(
///     vec![cert.cert.der().clone()],
///     rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into()),
/// )?;
/// let acceptor = TlsAcceptor::new(Arc::new(config))
///     .with_handshake_timeout(std::time::Duration::from_secs(5));
///
/// let sched = coro_io::IoScheduler::new(Default::default())?;
/// let listener = TcpListener::bind(&sched, "127.0.0.1:0")?;
/// let s = sched.clone();
/// let _server = sched.spawn(async move {
///     loop {
///         let Ok((tcp, _peer)) = listener.accept().await else { break };
///         let acceptor = acceptor.clone();
///         // One task per connection: a slow handshake blocks nobody else.
///         drop(s.spawn(async move {
///             if let Ok(tls) = acceptor.accept(tcp).await {
///                 let _ = tls.write_all(b"hello over TLS".as_slice()).await;
///                 let _ = tls.shutdown().await;
///             }
///         }));
///     }
/// });
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    timeout: Duration,
}

impl TlsAcceptor {
    /// An acceptor with `config` and the default 10 s handshake timeout.
    pub fn new(config: Arc<ServerConfig>) -> TlsAcceptor {
        TlsAcceptor {
            config,
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// The same acceptor with handshakes bounded by `timeout`
    /// (`Duration::MAX`: no bound).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> TlsAcceptor {
        self.timeout = timeout;
        self
    }

    /// The handshake bound.
    pub fn handshake_timeout(&self) -> Duration {
        self.timeout
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Run the server side of a TLS handshake on `tcp` (TLS 1.2 or 1.3 as
    /// the config allows), within the handshake timeout.
    ///
    /// # Errors
    ///
    /// The message names the peer address:
    ///
    /// * `InvalidData`: the client spoke no TLS (garbage instead of a
    ///   ClientHello), offered nothing in common, sent an alert (e.g. it
    ///   does not trust our certificate), or failed client authentication;
    ///   the `rustls::Error` is the source ([`rustls_error`](super::rustls_error));
    /// * `TimedOut`: the handshake did not finish within the timeout;
    /// * `UnexpectedEof`: the client closed the connection before the
    ///   handshake finished (a close_notify alert mid-handshake is, by
    ///   rustls, an error under TLS 1.3 and ignored under TLS 1.2, where
    ///   the handshake then waits for its timeout);
    /// * socket errors as they are.
    ///
    /// The alert rustls sends on a failed handshake is delivered (within a
    /// second) before the error returns; the connection is then closed.
    ///
    /// TLS 1.3 early data (0-RTT) is refused, also with a config whose
    /// `max_early_data_size` allows it (early data can be replayed by an
    /// attacker, and the stream has no separate way to hand it out). A
    /// resuming client may still send some; it is discarded, and the
    /// handshake tells the client, whose own code must send it again
    /// (rustls' client leaves that to its caller: `is_early_data_accepted`).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the connection (nothing else is left).
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream> {
        let peer = tcp
            .peer_addr()
            .map_or_else(|_| "a client".to_owned(), |a| a.to_string());
        let mut conn = ServerConnection::new(self.config.clone())
            .map_err(|e| tls_error(&format!("TLS server setup for {peer}"), e))?;
        // Early data (0-RTT) is refused, whatever `max_early_data_size`
        // says: rustls gives it out only through `early_data()`, which the
        // stream's reads do not use, so accepted early data would be lost
        // while the client believes it delivered. Refused, the client
        // sends it again after the handshake.
        conn.reject_early_data();
        let mut stream = TlsStream::new(tcp, Connection::Server(conn));
        stream.handshake(self.timeout, &peer).await?;
        Ok(stream)
    }
}
