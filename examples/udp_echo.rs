//! A UDP echo server (like the echo service on port 7), with a self-test.
//!
//! ```text
//! cargo run --example udp_echo                              # self-test: server + client, then exit
//! cargo run --example udp_echo -- --mode serve --port 7007  # serve until Ctrl-C
//! ```
//!
//! The self-test binds the server on a free loopback port, sends five
//! datagrams from a client socket, prints each echo and checks it.

#[path = "common/args.rs"]
#[allow(dead_code, unreachable_pub)]
mod args;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use coro::io::IoScheduler;
use coro::net::udp::UdpSocket;

/// Largest UDP payload (IPv6's; IPv4's is 65,507).
const MAX_DATAGRAM: usize = 65_535;

// README-BEGIN: the code README shows (tests/readme.rs checks it)
/// Echo every datagram to its sender, forever. A reply that cannot be
/// sent (no route back, a source the kernel will not send to, such as
/// port 0) is that sender's loss, not the server's end.
async fn serve(sock: UdpSocket) -> io::Result<()> {
    let mut buf = Vec::with_capacity(MAX_DATAGRAM);
    loop {
        buf.clear();
        let (r, b) = sock.recv_from(buf).await;
        let (_, from) = r?;
        let (w, b) = sock.send_to(b, from).await;
        if let Err(e) = w {
            eprintln!("udp_echo: no reply to {from}: {e}");
        }
        buf = b;
    }
}
// README-END

async fn self_test(sched: IoScheduler, server: SocketAddr) -> io::Result<()> {
    // The server's family (`--host ::1` too).
    let any = match server {
        SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
        SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
    };
    let client = UdpSocket::bind(&sched, any)?;
    client.connect(server).await?;
    for i in 0..5 {
        let msg = format!("datagram {i}");
        client.send(msg.clone().into_bytes()).await.0?;
        // UDP may drop: give each echo a deadline instead of hanging.
        // (`recv_timeout`, not `timeout(.., recv(..))`: a receive dropped
        // at its deadline may lose a datagram that arrives just then.)
        let (r, buf) = client
            .recv_timeout(Vec::with_capacity(64), Duration::from_secs(2))
            .await;
        r.map_err(|e| io::Error::new(e.kind(), format!("no echo within 2 s: {e}")))?;
        let got = String::from_utf8_lossy(&buf);
        println!("client: sent {msg:?}, got {got:?} back");
        assert_eq!(got, msg);
    }
    println!("udp_echo: 5 datagrams echoed");
    Ok(())
}

fn main() -> io::Result<()> {
    const USAGE: &str = "udp_echo [--mode selftest|serve] [--port 7007] [--host 127.0.0.1]";
    let a = args::Args::from_env(USAGE);
    let mode: String = a.get("mode", "selftest".to_owned());
    let host: std::net::IpAddr = a.get("host", std::net::IpAddr::from([127, 0, 0, 1]));
    a.reject_unknown(USAGE, &["port"]);
    let sched = IoScheduler::new(Default::default())?;
    match mode.as_str() {
        "serve" => {
            let sock = UdpSocket::bind(&sched, SocketAddr::new(host, a.get("port", 7007u16)))?;
            println!(
                "udp_echo: echoing datagrams on {}; press Ctrl-C to stop",
                sock.local_addr()?
            );
            coro::sync_wait(sched.spawn(serve(sock))).map_err(io::Error::other)?
        }
        "selftest" => {
            let sock = UdpSocket::bind(&sched, SocketAddr::new(host, 0))?;
            let addr = sock.local_addr()?;
            println!("server: echoing datagrams on a free port");
            let server = sched.spawn(serve(sock));
            let r = coro::sync_wait(sched.spawn(self_test(sched.clone(), addr)))
                .map_err(io::Error::other)?;
            server.abort();
            sched.shutdown();
            r
        }
        other => {
            eprintln!("udp_echo: --mode {other:?}: expected selftest or serve");
            std::process::exit(2);
        }
    }
}
