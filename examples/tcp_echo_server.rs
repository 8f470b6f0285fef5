//! libcoro's `tcp_echo_server`: every byte a client sends comes back.
//!
//! ```text
//! cargo run --release --example tcp_echo_server [-- --threads N --port 8081 --driver epoll|uring|auto --copy-reads]
//! cargo run --release --example echo_client -- --addr 127.0.0.1:8081 --conns 64 --len 1024 --secs 10
//! cargo run --release --example tcp_echo_server -- --tls --cert cert.pem --key key.pem   # TLS echo
//! ```
//!
//! Thread-per-core like `http_200_ok_server`: one inline scheduler and one
//! `SO_REUSEPORT` listener per core. On io_uring with its receive queue
//! (the default on Linux 6.0+) each message is sent back from the buffer
//! the kernel received it into (`read_lease`: no copy in user space);
//! elsewhere, or with `--copy-reads`, each connection reads into one owned
//! 16 KiB buffer and writes that same buffer back, until EOF.
//!
//! With `--tls` (feature `tls`), every connection first does a TLS
//! handshake with the PEM certificate chain and key given (in its own
//! task, bounded by 10 s), then echoes the decrypted bytes until the
//! client's close_notify, and answers with its own. `tls_echo --mode
//! client` talks to it.
//!
//! No timeouts after the handshake: a client that never sends, or sends
//! and never reads the echo, keeps its connection for as long as it stays
//! connected. A server for untrusted peers bounds both, as
//! `http_200_ok_server`'s idle timer does.

#[path = "common/args.rs"]
#[allow(dead_code, unreachable_pub)]
mod args;
#[path = "common/per_core.rs"]
#[allow(dead_code, unreachable_pub)]
mod per_core;

use coro::io::IoScheduler;
use coro::net::tcp::TcpStream;

const BUF: usize = 16 * 1024;

const USAGE: &str = "tcp_echo_server [--threads N] [--port 8081] [--host 127.0.0.1] \
    [--driver epoll|uring|auto] [--copy-reads] [--tls --cert cert.pem --key key.pem] \
    [--drain-ms 2000] [--stats-file PATH] [--recv-queue on|off] [--recv-buffers N]";

fn main() {
    let a = args::Args::from_env_with_switches(USAGE, &["tls", "copy-reads"]);
    let server = per_core::ServerArgs::from(&a, 8081);
    a.reject_unknown(USAGE, &["tls", "cert", "key", "copy-reads"]);
    if a.has("tls") {
        tls::run(&a, &server);
    }
    if a.opt("cert").is_some() || a.opt("key").is_some() {
        eprintln!("error: --cert/--key need --tls\nusage: {USAGE}");
        std::process::exit(2);
    }
    let copy_reads = a.has("copy-reads");
    per_core::run("tcp_echo_server", "", &server, move |sched, listener| {
        per_core::accept_loop(sched, listener, move |s, stream| {
            serve(s, stream, copy_reads)
        })
    })
}

// README-BEGIN: the code README shows (tests/readme.rs checks it)
async fn echo(_sched: IoScheduler, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(BUF);
    loop {
        let (r, b) = stream.read(buf).await;
        match r {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // The buffer holds exactly what was read: send it back as is.
        let (w, mut b) = stream.write_all(b).await;
        if w.is_err() {
            return;
        }
        b.clear();
        buf = b;
    }
}
// README-END

/// [`echo`] without a copy in user space, where the driver has a receive
/// queue (io_uring, the default on Linux 6.0+): each message is sent back
/// from the buffer the kernel received it into, which goes back to the
/// kernel once the send is done. (Elsewhere a lease would be a fresh `Vec`
/// per message, so `echo` with its one reused buffer is the better loop.)
async fn echo_in_place(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    loop {
        let bytes = match stream.read_lease(BUF).await {
            Ok(bytes) if !bytes.is_empty() => bytes,
            _ => return, // end of stream or error
        };
        if stream.write_all(bytes).await.0.is_err() {
            return;
        }
    }
}

/// The loop for `stream`: in place where it copies nothing, unless
/// `--copy-reads` asks for [`echo`] (to measure the difference).
async fn serve(sched: IoScheduler, stream: TcpStream, copy_reads: bool) {
    if !copy_reads && sched.driver().recv_queue() {
        echo_in_place(stream).await
    } else {
        echo(sched, stream).await
    }
}

#[cfg(feature = "tls")]
mod tls {
    use std::sync::Arc;

    use coro::net::tls::{self, TlsAcceptor, TlsStream};

    use crate::{BUF, USAGE, args, per_core};

    pub(crate) fn run(a: &args::Args, server: &per_core::ServerArgs) -> ! {
        let (Some(cert), Some(key)) = (a.opt("cert"), a.opt("key")) else {
            eprintln!("error: --tls needs --cert FILE and --key FILE (PEM)\nusage: {USAGE}");
            std::process::exit(2);
        };
        let config = tls::load_certs(cert)
            .and_then(|chain| Ok((chain, tls::load_private_key(key)?)))
            .and_then(|(chain, key)| tls::server_config(chain, key))
            .unwrap_or_else(|e| {
                eprintln!("tcp_echo_server: {e}");
                std::process::exit(1);
            });
        let acceptor = TlsAcceptor::new(Arc::new(config));
        per_core::run(
            "tcp_echo_server (TLS)",
            "",
            server,
            move |sched, listener| {
                let acceptor = acceptor.clone();
                per_core::accept_loop(sched, listener, move |_sched, stream| {
                    let acceptor = acceptor.clone();
                    async move {
                        let _ = stream.set_nodelay(true);
                        // Each connection is its own task: a slow handshake
                        // holds up no one else.
                        if let Ok(tls) = acceptor.accept(stream).await {
                            echo(tls).await;
                        }
                    }
                })
            },
        )
    }

    async fn echo(tls: TlsStream) {
        let mut buf = Vec::with_capacity(BUF);
        loop {
            let (r, b) = tls.read(buf).await;
            match r {
                Ok(0) => {
                    let _ = tls.shutdown().await;
                    return;
                }
                Err(_) => return,
                Ok(_) => {}
            }
            let (w, mut b) = tls.write_all(b).await;
            if w.is_err() {
                return;
            }
            b.clear();
            buf = b;
        }
    }
}

#[cfg(not(feature = "tls"))]
mod tls {
    pub(crate) fn run(_: &crate::args::Args, _: &crate::per_core::ServerArgs) -> ! {
        eprintln!("error: --tls needs the `tls` feature (on by default)");
        std::process::exit(2);
    }
}
