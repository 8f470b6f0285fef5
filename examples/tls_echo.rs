//! A TLS echo server and client in one binary (feature `tls`, on by default).
//!
//! ```text
//! cargo run --example tls_echo                       # self-test: server + client on loopback, then exit
//! cargo run --example tls_echo -- --mode server --port 8443 [--cert cert.pem --key key.pem]
//! cargo run --example tls_echo -- --mode client --addr 127.0.0.1:8443 --ca cert.pem [--name localhost] [--message hi]
//! ```
//!
//! The self-test makes a self-signed certificate for `localhost` at run
//! time (rcgen), serves on a free loopback port with ALPN `coro-echo`,
//! connects a client that trusts exactly that certificate, echoes three
//! messages, closes with close_notify on both sides and prints each step.
//!
//! `--mode server` without `--cert/--key` makes a self-signed certificate
//! too and writes it to a file it names, for a client's `--ca`. Each
//! connection is served in its own task: its handshake (bounded by 10 s)
//! holds up nobody else.

#[path = "common/args.rs"]
#[allow(dead_code, unreachable_pub)]
mod args;
#[path = "common/per_core.rs"]
#[allow(dead_code, unreachable_pub)]
mod per_core;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use coro::io::{IoScheduler, IoSchedulerOptions};
use coro::net::tcp::{TcpListener, TcpStream};
use coro::net::tls::{self, TlsAcceptor, TlsConnector, TlsStream, rustls};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const USAGE: &str = "tls_echo [--mode selftest|server|client] [--port 8443] [--host 127.0.0.1] \
    [--cert cert.pem --key key.pem] [--addr 127.0.0.1:8443 --ca ca.pem --name localhost \
    --message TEXT] [--driver epoll|uring|auto]";
const ALPN: &[u8] = b"coro-echo";

/// `println!` that ignores a closed stdout (a server keeps serving).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

fn main() {
    let a = args::Args::from_env(USAGE);
    let driver = per_core::parse_driver(&a.get("driver", "auto".to_owned()));
    let sched = IoScheduler::new(IoSchedulerOptions {
        driver,
        ..Default::default()
    })
    .unwrap_or_else(|e| fail(&format!("cannot start a {driver:?} scheduler: {e}")));
    let mode = a.get("mode", "selftest".to_owned());
    // The modes read the rest.
    a.reject_unknown(
        USAGE,
        &[
            "cert", "key", "host", "port", "addr", "ca", "name", "message",
        ],
    );
    let res = match mode.as_str() {
        "selftest" => selftest(&sched),
        "server" => server(&sched, &a),
        "client" => client(&sched, &a),
        other => fail(&format!(
            "--mode {other:?}: expected selftest, server or client\nusage: {USAGE}"
        )),
    };
    if let Err(e) = res {
        fail(&e.to_string());
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("tls_echo: {msg}");
    std::process::exit(1)
}

/// A self-signed certificate for localhost and 127.0.0.1, made now.
fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen makes a certificate");
    let pem = c.cert.pem();
    let key = PrivateKeyDer::Pkcs8(c.key_pair.serialize_der().into());
    (c.cert.der().clone(), key, pem)
}

fn acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<TlsAcceptor> {
    let mut cfg = tls::server_config(chain, key)?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(TlsAcceptor::new(Arc::new(cfg)))
}

fn connector(roots: Vec<CertificateDer<'static>>) -> io::Result<TlsConnector> {
    let mut cfg = tls::client_config(roots)?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(TlsConnector::new(Arc::new(cfg)))
}

// README-BEGIN: the code README shows (tests/readme.rs checks it)
/// Echo until the client's close_notify; returns the bytes echoed.
async fn echo(tls: &TlsStream) -> io::Result<u64> {
    let mut total = 0;
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let (n, b) = tls.read(buf).await;
        let n = n?;
        if n == 0 {
            tls.shutdown().await?;
            return Ok(total);
        }
        total += n as u64;
        let (r, mut b) = tls.write_all(b).await;
        r?;
        b.clear();
        buf = b;
    }
}
// README-END

/// Accept forever, one task per connection; `log` says what happened.
async fn accept_loop(sched: IoScheduler, listener: TcpListener, acceptor: TlsAcceptor, log: bool) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("tls_echo: accept: {e}");
                sched.sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        drop(sched.spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("server: {e}");
                    return;
                }
            };
            if log {
                say!(
                    "server: accepted {peer}, SNI {}, {}",
                    tls.server_name().unwrap_or("(none)"),
                    describe(&tls)
                );
            }
            match echo(&tls).await {
                Ok(n) if log => say!("server: {peer} closed cleanly after {n} bytes"),
                Ok(_) => {}
                Err(e) => eprintln!("server: {peer}: {e}"),
            }
        }));
    }
}

fn describe(tls: &TlsStream) -> String {
    format!(
        "{:?}, {:?}, ALPN {}",
        tls.protocol_version().expect("after the handshake"),
        tls.negotiated_cipher_suite()
            .expect("after the handshake")
            .suite(),
        tls.alpn_protocol()
            .map_or("(none)".into(), |p| String::from_utf8_lossy(p).into_owned())
    )
}

fn selftest(sched: &IoScheduler) -> io::Result<()> {
    let (cert, key, _) = self_signed();
    println!("tls_echo: self-signed certificate for localhost made at run time");
    let acceptor = acceptor(vec![cert.clone()], key)?;
    let connector = connector(vec![cert])?;
    let listener = TcpListener::bind(sched, "127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    println!("server: listening on 127.0.0.1 (a free port)");
    drop(sched.spawn(accept_loop(sched.clone(), listener, acceptor, false)));

    let s = sched.clone();
    coro::sync_wait(sched.spawn(async move {
        let tcp = TcpStream::connect(&s, addr).await?;
        let tls = connector.connect("localhost", tcp).await?;
        println!("client: connected to localhost: {}", describe(&tls));
        let peer = tls.peer_certificates().map_or(0, |c| c.len());
        println!("client: the server presented {peer} certificate, trusted");
        for msg in ["hello", "over TLS", "from coro"] {
            let (r, _) = tls.write_all(msg.as_bytes().to_vec()).await;
            r?;
            let mut got = Vec::new();
            while got.len() < msg.len() {
                let (n, b) = tls.read(Vec::with_capacity(64)).await;
                if n? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed early",
                    ));
                }
                got.extend_from_slice(&b);
            }
            println!(
                "client: sent {msg:?}, got {:?} back",
                String::from_utf8_lossy(&got)
            );
            if got != msg.as_bytes() {
                return Err(io::Error::other("the echo differs"));
            }
        }
        tls.shutdown().await?;
        let (n, _) = tls.read(Vec::with_capacity(64)).await;
        if n? != 0 {
            return Err(io::Error::other("data after the echo"));
        }
        println!("client: close_notify sent, and the server's received");
        io::Result::Ok(())
    }))
    .map_err(io::Error::other)??;
    println!("tls_echo: 3 messages echoed over TLS");
    Ok(())
}

fn server(sched: &IoScheduler, a: &args::Args) -> io::Result<()> {
    let (chain, key) = match (a.opt("cert"), a.opt("key")) {
        (Some(c), Some(k)) => (tls::load_certs(c)?, tls::load_private_key(k)?),
        (None, None) => {
            let (cert, key, pem) = self_signed();
            let path =
                std::env::temp_dir().join(format!("coro-tls-echo-{}.pem", std::process::id()));
            std::fs::write(&path, pem)?;
            eprintln!(
                "tls_echo: no --cert/--key: serving a self-signed certificate for localhost; \
                 clients can trust it with --ca {}",
                path.display()
            );
            (vec![cert], key)
        }
        _ => fail("--cert and --key go together"),
    };
    let acceptor = acceptor(chain, key)?;
    let host: std::net::IpAddr = a.get("host", std::net::IpAddr::from([127, 0, 0, 1]));
    let listener = TcpListener::bind(sched, SocketAddr::new(host, a.get("port", 8443u16)))?;
    println!(
        "tls_echo: listening on {} ({:?} driver); press Ctrl-C to stop",
        listener.local_addr()?,
        sched.driver_kind()
    );
    use std::io::Write;
    let _ = io::stdout().flush();
    let _ = coro::sync_wait(sched.spawn(accept_loop(sched.clone(), listener, acceptor, true)));
    Ok(())
}

fn client(sched: &IoScheduler, a: &args::Args) -> io::Result<()> {
    let addr: SocketAddr = a.get("addr", SocketAddr::from(([127, 0, 0, 1], 8443)));
    let ca: PathBuf = a
        .opt("ca")
        .unwrap_or_else(|| fail("--mode client needs --ca FILE (the certificates to trust)"))
        .into();
    let name = a.get("name", "localhost".to_owned());
    let message = a.get("message", "hello over TLS".to_owned());
    let connector = connector(tls::load_certs(&ca)?)?;
    let s = sched.clone();
    coro::sync_wait(sched.spawn(async move {
        let tcp = TcpStream::connect(&s, addr).await?;
        let tls = connector.connect(&name, tcp).await?;
        println!("client: connected to {name} at {addr}: {}", describe(&tls));
        let (r, _) = tls.write_all(message.clone().into_bytes()).await;
        r?;
        tls.shutdown().await?;
        let mut got = Vec::new();
        loop {
            let (n, b) = tls.read(Vec::with_capacity(4096)).await;
            if n? == 0 {
                break;
            }
            got.extend_from_slice(&b);
        }
        println!(
            "client: sent {message:?}, got {:?} back",
            String::from_utf8_lossy(&got)
        );
        if got != message.as_bytes() {
            return Err(io::Error::other("the echo differs"));
        }
        io::Result::Ok(())
    }))
    .map_err(io::Error::other)?
}
