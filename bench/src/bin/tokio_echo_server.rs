//! tokio twin of coro's `tcp_echo_server` example, for `bench/run`.
//!
//! `--threads N` current-thread runtimes with SO_REUSEPORT listeners, or
//! `--threads 0` for one multi-thread runtime.

use coro_bench::args::Args;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "tokio_echo_server [--port 8081] [--threads N (0 = one multi-thread runtime)]";

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
                tokio::spawn(echo(stream));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    }
}

async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn main() {
    let args = Args::from_env(USAGE);
    let port: u16 = args.get("port", 8081);
    let threads: usize = args.get(
        "threads",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    if threads == 0 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let l = listener(addr).expect("bind");
        println!("tokio_echo_server listening on {addr} (multi-thread runtime; Ctrl-C stops)");
        rt.block_on(async { serve(TcpListener::from_std(l).unwrap()).await });
        return;
    }
    // Bind every listener before saying so: the bench script connects as
    // soon as it reads the line.
    let listeners: Vec<_> = (0..threads)
        .map(|_| listener(addr).expect("bind"))
        .collect();
    println!("tokio_echo_server listening on {addr} ({threads} threads; Ctrl-C stops)");
    let handles: Vec<_> = listeners
        .into_iter()
        .map(|std_listener| {
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
