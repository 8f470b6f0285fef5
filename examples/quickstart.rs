//! The README's first example: a TCP echo server on `#[coro::main]` that
//! stops on Ctrl-C.
//!
//! ```text
//! cargo run --example quickstart
//! ```

// README-BEGIN: the code README shows (tests/readme.rs checks it)
use coro::io::IoScheduler;
use coro::net::tcp::{TcpListener, TcpStream};

#[coro::main]
async fn main() -> std::io::Result<()> {
    let sched = IoScheduler::current().expect("#[coro::main] runs on a scheduler");
    let listener = TcpListener::bind(&sched, "127.0.0.1:0")?;
    let ctrl_c = coro::signal::ctrl_c(); // from here on, Ctrl-C is ours
    println!(
        "echo server listening on {} (press Ctrl-C to stop)",
        listener.local_addr()?
    );
    coro::spawn(async move {
        while let Ok((conn, _peer)) = listener.accept().await {
            coro::spawn(echo(conn)).detach();
        }
    })
    .detach();
    // Returning ends #[coro::main], which shuts the scheduler down.
    ctrl_c.await
}

/// Every byte back, reading into one owned buffer and writing it out as is.
async fn echo(conn: TcpStream) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let (n, b) = conn.read(buf).await;
        if !matches!(n, Ok(n) if n > 0) {
            return;
        }
        let (w, mut b) = conn.write_all(b).await;
        if w.is_err() {
            return;
        }
        b.clear();
        buf = b;
    }
}
// README-END
