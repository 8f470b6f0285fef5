//! TLS load generator for `bench/run-tls` (tokio + tokio-rustls), the same
//! client for coro's and tokio's servers.
//!
//! ```text
//! tls_load --addr 127.0.0.1:8443 --ca cert.pem --mode handshake [--conns 64] [--secs 5] [--threads 1]
//! tls_load --addr 127.0.0.1:8443 --ca cert.pem --mode echo --len 1024 [--conns 64] [--secs 5] [--threads 1]
//! ```
//!
//! `handshake`: each of `--conns` loops connects, does a full handshake
//! (session resumption off), sends close_notify and resets the socket (no
//! TIME_WAIT pile-up); prints handshakes/s. `echo`: `--conns` connections
//! each send a `--len`-byte message and wait for all of it back, over and
//! over; prints messages/s and MB/s (payload one way, 10^6 bytes), in the
//! format of `echo_client`. The clock starts once every connection is up
//! (echo) or at once (handshake).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coro_bench::args::Args;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const USAGE: &str = "tls_load --addr 127.0.0.1:8443 --ca cert.pem --mode handshake|echo \
    [--len 1024] [--conns 64] [--secs 5] [--threads 1] [--name localhost]";

fn main() {
    let a = Args::from_env(USAGE);
    let addr: SocketAddr = a.get("addr", SocketAddr::from(([127, 0, 0, 1], 8443)));
    let Some(ca) = a.opt("ca") else {
        eprintln!("error: --ca is required\nusage: {USAGE}");
        std::process::exit(2);
    };
    let mode = a.get("mode", "echo".to_owned());
    let len: usize = a.get("len", 1024usize).max(1);
    let conns: usize = a.get("conns", 64usize).max(1);
    let secs: f64 = a.get("secs", 5.0f64);
    let threads: usize = a.get("threads", 1usize).max(1);
    let name = ServerName::try_from(a.get("name", "localhost".to_owned())).expect("server name");

    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap_or_else(|e| panic!("{ca}: {e:?}")) {
        roots.add(c.expect("certificate")).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let connector = TlsConnector::from(Arc::new(config));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(tokio::sync::Barrier::new(conns + 1));
    let deadline_secs = secs;
    rt.block_on(async move {
        for _ in 0..conns {
            let (connector, name, count, ready) =
                (connector.clone(), name.clone(), count.clone(), ready.clone());
            let mode = mode.clone();
            tokio::spawn(async move {
                let r = if mode == "handshake" {
                    ready.wait().await;
                    handshakes(addr, &connector, name, &count).await
                } else {
                    echo(addr, &connector, name, len, &count, &ready).await
                };
                if let Err(e) = r {
                    eprintln!("tls_load: {e}");
                    std::process::exit(1);
                }
            });
        }
        ready.wait().await;
        let (c0, t0) = (count.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs_f64(deadline_secs)).await;
        let (c1, el) = (count.load(Ordering::Relaxed), t0.elapsed().as_secs_f64());
        let rate = (c1 - c0) as f64 / el;
        if mode == "handshake" {
            println!(
                "tls_load: {conns} loops, {el:.1} s: {rate:.0} handshakes/s ({} handshakes)",
                c1 - c0
            );
        } else {
            println!(
                "tls_load: {conns} connections, {len} B messages, {el:.1} s: {rate:.0} msgs/s, {:.2} MB/s ({} messages)",
                rate * len as f64 / 1e6,
                c1 - c0
            );
        }
        // Connections are still busy: leave without tearing them down.
        std::process::exit(0);
    });
}

async fn handshakes(
    addr: SocketAddr,
    connector: &TlsConnector,
    name: ServerName<'static>,
    count: &AtomicU64,
) -> std::io::Result<()> {
    loop {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut tls = connector.connect(name.clone(), tcp).await?;
        count.fetch_add(1, Ordering::Relaxed);
        tls.shutdown().await?;
        // A reset instead of a FIN: no TIME_WAIT per handshake.
        let (tcp, _) = tls.into_inner();
        socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO))?;
    }
}

async fn echo(
    addr: SocketAddr,
    connector: &TlsConnector,
    name: ServerName<'static>,
    len: usize,
    count: &AtomicU64,
    ready: &tokio::sync::Barrier,
) -> std::io::Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = connector.connect(name, tcp).await?;
    ready.wait().await;
    let msg = vec![0x5a_u8; len];
    let mut buf = vec![0u8; len];
    loop {
        tls.write_all(&msg).await?;
        tls.read_exact(&mut buf).await?;
        count.fetch_add(1, Ordering::Relaxed);
    }
}
