//! tokio + tokio-rustls twin of `tcp_echo_server --tls`, for `bench/run-tls`.
//!
//! `--threads N` current-thread runtimes with SO_REUSEPORT listeners, each
//! connection's handshake and echo in its own task, rustls with the same
//! `ring` provider and defaults (TLS 1.2 + 1.3) as coro's
//! `tls::server_config`.

use std::net::SocketAddr;
use std::sync::Arc;

use coro_bench::args::Args;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

const USAGE: &str =
    "tokio_tls_echo_server --cert cert.pem --key key.pem [--port 8443] [--threads N]";

fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream, acceptor.clone()));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    }
}

async fn echo(stream: TcpStream, acceptor: TlsAcceptor) {
    let _ = stream.set_nodelay(true);
    let handshake =
        tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream));
    let Ok(Ok(mut tls)) = handshake.await else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tls.read(&mut buf).await {
            Ok(0) => {
                let _ = tls.shutdown().await;
                return;
            }
            Err(_) => return,
            Ok(n) => {
                if tls.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn main() {
    let args = Args::from_env(USAGE);
    let port: u16 = args.get("port", 8443);
    let threads: usize = args
        .get(
            "threads",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        )
        .max(1);
    let (Some(cert), Some(key)) = (args.opt("cert"), args.opt("key")) else {
        eprintln!("error: --cert and --key are required\nusage: {USAGE}");
        std::process::exit(2);
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect())
        .unwrap_or_else(|e| panic!("{cert}: {e:?}"));
    let key = PrivateKeyDer::from_pem_file(key).unwrap_or_else(|e| panic!("{key}: {e:?}"));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("certificate and key");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // Bind every listener before saying so: the bench script connects as
    // soon as it reads the line.
    let listeners: Vec<_> = (0..threads)
        .map(|_| listener(addr).expect("bind"))
        .collect();
    println!("tokio_tls_echo_server listening on {addr} ({threads} threads; Ctrl-C stops)");
    let handles: Vec<_> = listeners
        .into_iter()
        .map(|std_listener| {
            let acceptor = acceptor.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    serve(TcpListener::from_std(std_listener).unwrap(), acceptor).await
                });
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}
