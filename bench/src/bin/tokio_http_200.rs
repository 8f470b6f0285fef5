//! tokio twin of coro's `http_200_ok_server` example, for `bench/run`.
//!
//! Same protocol code (`examples/common/http.rs`), same shape: `--threads N`
//! current-thread runtimes, each with its own SO_REUSEPORT listener (the
//! thread-per-core layout tokio users reach for when chasing requests/s), or
//! `--threads 0` for one multi-thread runtime with a shared listener.

use coro_bench::{args::Args, http};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "tokio_http_200 [--port 8080] [--threads N (0 = one multi-thread runtime)]";

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

async fn serve(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(conn(stream));
            }
            // EMFILE and friends: back off instead of spinning.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    }
}

async fn conn(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut input = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let (used, close) = if input.is_empty() {
            let (used, close) = http::respond(&buf[..n], &mut out);
            input.extend_from_slice(&buf[used..n]);
            (0, close)
        } else {
            input.extend_from_slice(&buf[..n]);
            http::respond(&input, &mut out)
        };
        input.drain(..used);
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if close {
            return;
        }
    }
}

fn main() {
    let args = Args::from_env(USAGE);
    let port: u16 = args.get("port", 8080);
    let threads: usize = args.get(
        "threads",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    println!("tokio_http_200 listening on http://{addr} ({threads} threads; Ctrl-C stops)");
    if threads == 0 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = TcpListener::from_std(listener(addr).expect("bind")).unwrap();
            serve(l).await
        });
        return;
    }
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let std_listener = listener(addr).expect("bind");
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(
                    async move { serve(TcpListener::from_std(std_listener).unwrap()).await },
                );
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}
