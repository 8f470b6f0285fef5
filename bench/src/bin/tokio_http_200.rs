//! tokio twin of coro's `http_200_ok_server` example, for `bench/run`.
//!
//! Same protocol code (`examples/common/http.rs`), same shape: `--threads N`
//! current-thread runtimes, each with its own SO_REUSEPORT listener (the
//! thread-per-core layout tokio users reach for when chasing requests/s), or
//! `--threads 0` for one multi-thread runtime with a shared listener.

use coro_bench::{args::Args, http};
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str =
    "tokio_http_200 [--port 8080] [--threads N (0 = one multi-thread runtime)] [--idle-ms 10000]";

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

async fn serve(listener: TcpListener, idle: Duration) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(conn(stream, idle));
            }
            // EMFILE and friends: back off instead of spinning.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    }
}

/// Same idle rule as the coro example: closed after `idle` to `2 * idle`
/// without progress (a whole request read, a response sent; one timer per
/// connection, re-armed lazily, looked at only while a read or write waits).
struct Idle<'a> {
    timer: Pin<&'a mut tokio::time::Sleep>,
    active: bool,
    idle: Duration,
}

impl Idle<'_> {
    /// `Some(())` to go on waiting, `None` once idle too long (the timer fired).
    fn fired(&mut self) -> Option<()> {
        if !self.active {
            return None;
        }
        self.active = false;
        let at = tokio::time::Instant::now() + self.idle;
        self.timer.as_mut().reset(at);
        Some(())
    }
}

/// `write_all`, or `false` if it failed or the peer stopped reading for too
/// long (as the coro example's `send`).
async fn send(stream: &mut TcpStream, bytes: &[u8], idle: &mut Idle<'_>) -> bool {
    let mut write = std::pin::pin!(stream.write_all(bytes));
    loop {
        tokio::select! {
            biased;
            r = &mut write => {
                if r.is_err() {
                    return false;
                }
                idle.active = true;
                return true;
            }
            () = idle.timer.as_mut() => {
                if idle.fired().is_none() {
                    return false;
                }
            }
        }
    }
}

async fn conn(mut stream: TcpStream, idle: Duration) {
    let _ = stream.set_nodelay(true);
    let mut input: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    // Same buffer policy as the coro example: 1 KiB, doubled when a read
    // fills it, up to 16 KiB, halved after a read of under a quarter.
    let mut buf = vec![0u8; 1024];
    let timer = tokio::time::sleep(idle);
    tokio::pin!(timer);
    let mut idle = Idle {
        timer,
        active: false,
        idle,
    };
    loop {
        let n = tokio::select! {
            biased;
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            () = idle.timer.as_mut() => {
                if idle.fired().is_none() {
                    return;
                }
                continue;
            }
        };
        let close = if input.is_empty() {
            if let Some((response, close)) = http::single(&buf[..n]) {
                if !send(&mut stream, response, &mut idle).await {
                    return;
                }
                close
            } else {
                let (used, close) = http::respond(&buf[..n], &mut out);
                if !close {
                    input.extend_from_slice(&buf[used..n]);
                }
                close
            }
        } else {
            input.extend_from_slice(&buf[..n]);
            let (used, close) = http::respond(&input, &mut out);
            input.drain(..used);
            close
        };
        if !out.is_empty() {
            if !send(&mut stream, &out, &mut idle).await {
                return;
            }
            out.clear();
        }
        if close {
            linger_close(stream).await;
            return;
        }
        if input.is_empty() {
            idle.active = true;
        }
        if out.capacity() > 16 * 1024 {
            out = Vec::new();
        }
        if input.is_empty() && input.capacity() > 16 * 1024 {
            input = Vec::new();
        }
        if n == buf.len() && n < 16 * 1024 {
            buf = vec![0u8; n * 2];
        } else if n < buf.len() / 4 && buf.len() > 1024 {
            buf = vec![0u8; buf.len() / 2];
        }
    }
}

/// As in the coro example: shut the write side, then drain what the client
/// still sends until it closes, for at most a second or 64 KiB.
async fn linger_close(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let drain = async {
        // The coro example's drain buffer: 4 KiB, reused.
        let mut buf = vec![0u8; 4096];
        let mut total = 0;
        while total < 64 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

fn main() {
    let args = Args::from_env(USAGE);
    let port: u16 = args.get("port", 8080);
    let threads: usize = args.get(
        "threads",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let idle = Duration::from_millis(args.get("idle-ms", 10_000u64).max(1));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    if threads == 0 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = TcpListener::from_std(listener(addr).expect("bind")).unwrap();
            println!("tokio_http_200 listening on http://{addr} ({threads} threads; Ctrl-C stops)");
            serve(l, idle).await
        });
        return;
    }
    // Bind every listener before saying so: the bench script connects as
    // soon as it reads the line.
    let listeners: Vec<_> = (0..threads)
        .map(|_| listener(addr).expect("bind"))
        .collect();
    println!("tokio_http_200 listening on http://{addr} ({threads} threads; Ctrl-C stops)");
    let handles: Vec<_> = listeners
        .into_iter()
        .map(|std_listener| {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    serve(TcpListener::from_std(std_listener).unwrap(), idle).await
                });
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}
