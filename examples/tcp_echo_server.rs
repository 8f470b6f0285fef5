//! libcoro's `tcp_echo_server`: every byte a client sends comes back.
//!
//! ```text
//! cargo run --release --example tcp_echo_server [-- --threads N --port 8081 --driver epoll|uring|auto]
//! cargo run --release --example echo_client -- --addr 127.0.0.1:8081 --conns 64 --len 1024 --secs 10
//! ```
//!
//! Thread-per-core like `http_200_ok_server`: one inline scheduler and one
//! `SO_REUSEPORT` listener per core. Each connection reads into one owned
//! 16 KiB buffer and writes that same buffer back (no copy), until EOF.

#[path = "common/args.rs"]
#[allow(dead_code, unreachable_pub)]
mod args;
#[path = "common/per_core.rs"]
#[allow(dead_code, unreachable_pub)]
mod per_core;

use coro::io::IoScheduler;
use coro::net::tcp::TcpStream;

const BUF: usize = 16 * 1024;

fn main() {
    let a = args::Args::from_env(
        "tcp_echo_server [--threads N] [--port 8081] [--host 127.0.0.1] [--driver epoll|uring|auto]",
    );
    let server = per_core::ServerArgs::from(&a, 8081);
    per_core::run("tcp_echo_server", "", &server, |sched, listener| {
        per_core::accept_loop(sched, listener, echo)
    })
}

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
