//! An echo load generator (in the spirit of rust_echo_bench): `--conns`
//! connections each send a `--len`-byte message, wait for all of it to come
//! back, and repeat, for `--secs` seconds; prints messages/s and MB/s.
//!
//! ```text
//! cargo run --release --example echo_client -- --addr 127.0.0.1:8081 --conns 64 --len 1024 --secs 10 [--threads N --driver epoll|uring|auto]
//! ```
//!
//! Connections are spread over `--threads` inline schedulers (default: the
//! cores this process may use). The clock starts once every connection is
//! up. MB/s counts the payload echoed (one direction), in 10^6 bytes.
//!
//! `--hold-secs S` instead opens the connections, sends nothing, prints
//! `holding N connections` and keeps them idle for S seconds (`bench/run`
//! measures the servers' memory per idle connection with it).

#[path = "common/args.rs"]
#[allow(dead_code, unreachable_pub)]
mod args;
#[path = "common/per_core.rs"]
#[allow(dead_code, unreachable_pub)]
mod per_core;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coro::io::{IoScheduler, IoSchedulerOptions};
use coro::net::tcp::TcpStream;
use coro::sync::Latch;

/// `--name` as a duration in seconds (fractions allowed): a negative, NaN or
/// too large value exits with a usage error instead of a panic.
fn seconds(a: &args::Args, name: &str, default: f64) -> Duration {
    let v: f64 = a.get(name, default);
    Duration::try_from_secs_f64(v).unwrap_or_else(|_| {
        eprintln!("error: bad value {v} for --{name}: seconds, at least 0");
        std::process::exit(2);
    })
}

fn main() {
    let a = args::Args::from_env(
        "echo_client --addr 127.0.0.1:8081 [--conns 64] [--len 1024] [--secs 10] \
         [--threads N] [--driver epoll|uring|auto] [--hold-secs S]",
    );
    let addr: SocketAddr = a.get("addr", SocketAddr::from(([127, 0, 0, 1], 8081)));
    let conns: usize = a.get_in("conns", 64usize, 1..=100_000);
    let len: usize = a.get_in("len", 1024usize, 1..=64 << 20);
    let secs = seconds(&a, "secs", 10.0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: usize = a.get_in("threads", cores.min(4096), 1..=4096).min(conns);
    let driver = per_core::parse_driver(&a.get("driver", "auto".to_owned()));
    let hold = seconds(&a, "hold-secs", 0.0);
    a.reject_unknown(
        "echo_client --addr 127.0.0.1:8081 [--conns 64] [--len 1024] [--secs 10] \
         [--threads N] [--driver epoll|uring|auto] [--hold-secs S]",
        &[],
    );

    let connected = Arc::new(Latch::new(conns));
    let mut scheds = Vec::new();
    let mut counters = Vec::new();
    for t in 0..threads {
        let sched = IoScheduler::new(IoSchedulerOptions {
            driver,
            ..Default::default()
        })
        .unwrap_or_else(|e| {
            eprintln!("echo_client: cannot start a {driver:?} scheduler: {e}");
            std::process::exit(1);
        });
        // One counter per scheduler: only its own thread adds to it.
        let count = Arc::new(AtomicU64::new(0));
        for _ in (t..conns).step_by(threads) {
            let (s, c, l) = (sched.clone(), count.clone(), connected.clone());
            drop(sched.spawn(async move {
                let stream = match TcpStream::connect(&s, addr).await {
                    Ok(st) => st,
                    Err(e) => {
                        eprintln!("echo_client: {e}");
                        std::process::exit(1);
                    }
                };
                let _ = stream.set_nodelay(true);
                l.count_down(1);
                if !hold.is_zero() {
                    let _keep = stream;
                    return std::future::pending::<()>().await;
                }
                if let Err(e) = ping_pong(&stream, len, &c).await {
                    eprintln!("echo_client: connection failed: {e}");
                    std::process::exit(1);
                }
            }));
        }
        counters.push(count);
        scheds.push(sched);
    }
    coro::sync_wait(connected.wait());
    if !hold.is_zero() {
        println!("echo_client: holding {conns} connections");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::thread::sleep(hold);
        std::process::exit(0);
    }
    let total = || {
        counters
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let (m0, t0) = (total(), Instant::now());
    std::thread::sleep(secs);
    let (m1, el) = (total(), t0.elapsed().as_secs_f64());
    let msgs = (m1 - m0) as f64 / el;
    if m1 == m0 {
        // Not a rate of zero: nothing came back (a server that does not
        // answer, or messages larger than the sockets' buffers, which this
        // client sends whole before it reads the echo).
        eprintln!("echo_client: no message came back in {el:.1} s");
        std::process::exit(1);
    }
    println!(
        "echo_client: {conns} connections, {len} B messages, {el:.1} s: {msgs:.0} msgs/s, {:.2} MB/s ({} messages)",
        msgs * len as f64 / 1e6,
        m1 - m0
    );
    // The connections are still busy: leave without tearing them down.
    std::process::exit(0);
}

async fn ping_pong(stream: &TcpStream, len: usize, count: &AtomicU64) -> std::io::Result<()> {
    let mut msg = vec![0x5a_u8; len];
    let mut buf = Vec::with_capacity(len);
    loop {
        let (r, m) = stream.write_all(msg).await;
        r?;
        msg = m;
        let mut got = 0;
        while got < len {
            buf.clear();
            let (r, b) = stream.read(buf).await;
            buf = b;
            match r? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => got += n,
            }
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
}
