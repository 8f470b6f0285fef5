//! I/O driver benchmarks: io_uring against epoll (+ blocking pool for files)
//! in the same run, on the same data, rounds interleaved.
//!
//! ```text
//! cargo bench --bench io                 # 3 rounds, 256 MiB file
//! cargo bench --bench io -- --rounds 5 --file-mib 64
//! ```
//!
//! Rows (each run once per driver per round; the table shows medians and
//! the io_uring/epoll ratio):
//!
//! * file read, 1 KiB and 64 KiB reads of a `--file-mib` file (page cache
//!   warm), one read at a time and 16 in flight; also with `tokio::fs`
//!   (the same reads, each task seeking to its range first, on a
//!   current-thread runtime as coro's inline scheduler), the column a tokio
//!   user compares with;
//! * TCP round trip on loopback: 64-byte ping-pong over one connection,
//!   microseconds per round trip;
//! * file download: a 1 MiB file read in 1 KiB chunks, each sent to a socket
//!   (a thread drains the other end), GB/s.
//!
//! Not a criterion bench: each sample is seconds long and the comparison
//! wants interleaved rounds, so it prints its own table.

#![allow(missing_docs)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coro::io::fs::File;
use coro::io::{DriverKind, IoScheduler, IoSchedulerOptions};
use coro::net::tcp::TcpStream;

fn sched(kind: DriverKind) -> IoScheduler {
    IoScheduler::new(IoSchedulerOptions {
        driver: kind,
        ..Default::default()
    })
    .expect("scheduler")
}

fn run<T: Send + 'static>(
    s: &IoScheduler,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    coro::sync_wait(s.spawn(f)).expect("bench task")
}

/// Read the whole file with reads of `chunk` bytes, `depth` in flight.
/// Returns GB/s.
fn file_read(kind: DriverKind, path: &Path, size: u64, chunk: usize, depth: usize) -> f64 {
    let s = sched(kind);
    let s2 = s.clone();
    let path = path.to_owned();
    let secs = run(&s, async move {
        let f = Arc::new(File::open(&s2, &path).await.expect("open"));
        let start = Instant::now();
        let per = size / depth as u64;
        let tasks: Vec<_> = (0..depth as u64)
            .map(|i| {
                let f = f.clone();
                s2.spawn(async move {
                    let (lo, hi) = (i * per, (i + 1) * per);
                    let mut off = lo;
                    let mut buf = Vec::with_capacity(chunk);
                    while off < hi {
                        buf.clear();
                        let (r, b) = f.read_at(buf, off).await;
                        let n = r.expect("read");
                        assert!(n > 0, "short file");
                        off += n as u64;
                        buf = b;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("reader");
        }
        start.elapsed().as_secs_f64()
    });
    s.shutdown();
    size as f64 / secs / 1e9
}

/// [`file_read`] with `tokio::fs::File` on a current-thread runtime (its
/// reads go to tokio's blocking pool, one per `read` call). GB/s.
fn tokio_file_read(path: &Path, size: u64, chunk: usize, depth: usize) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let path = path.to_owned();
    let secs = rt.block_on(async move {
        let start = Instant::now();
        let per = size / depth as u64;
        let tasks: Vec<_> = (0..depth as u64)
            .map(|i| {
                let path = path.clone();
                tokio::spawn(async move {
                    let (lo, hi) = (i * per, (i + 1) * per);
                    let mut f = tokio::fs::File::open(&path).await.expect("open");
                    f.seek(std::io::SeekFrom::Start(lo)).await.expect("seek");
                    let mut buf = vec![0u8; chunk];
                    let mut off = lo;
                    while off < hi {
                        let n = f.read(&mut buf).await.expect("read");
                        assert!(n > 0, "short file");
                        off += n as u64;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("reader");
        }
        start.elapsed().as_secs_f64()
    });
    size as f64 / secs / 1e9
}

/// 64-byte ping-pong over loopback; microseconds per round trip.
fn tcp_rtt(kind: DriverKind, trips: usize) -> f64 {
    let s = sched(kind);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_nodelay(true).unwrap();
        let mut b = [0u8; 64];
        loop {
            if c.read_exact(&mut b).is_err() {
                return;
            }
            if c.write_all(&b).is_err() {
                return;
            }
        }
    });
    let s2 = s.clone();
    let secs = run(&s, async move {
        let c = TcpStream::connect(&s2, addr).await.expect("connect");
        c.set_nodelay(true).unwrap();
        let mut buf = Vec::with_capacity(64);
        let start = Instant::now();
        for _ in 0..trips {
            let (r, _) = c.write_all(&[7u8; 64][..]).await;
            r.expect("send");
            let mut got = 0;
            while got < 64 {
                buf.clear();
                let (r, b) = c.read(buf).await;
                got += r.expect("recv");
                buf = b;
            }
        }
        start.elapsed().as_secs_f64()
    });
    s.shutdown();
    echo.join().unwrap();
    secs * 1e6 / trips as f64
}

/// A 1 MiB file read in 1 KiB chunks, each sent to a socket, `reps` times;
/// GB/s of file data delivered.
fn download(kind: DriverKind, path: &Path, reps: usize) -> f64 {
    const MIB: u64 = 1 << 20;
    let s = sched(kind);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let total = MIB * reps as u64;
    let sink = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut b = vec![0u8; 1 << 16];
        let mut got = 0u64;
        while got < total {
            match c.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n as u64,
            }
        }
        got
    });
    let s2 = s.clone();
    let path = path.to_owned();
    let secs = run(&s, async move {
        let f = File::open(&s2, &path).await.expect("open");
        let c = TcpStream::connect(&s2, addr).await.expect("connect");
        let mut buf = Vec::with_capacity(1024);
        let start = Instant::now();
        for _ in 0..reps {
            let mut off = 0;
            while off < MIB {
                buf.clear();
                let (r, b) = f.read_at(buf, off).await;
                let n = r.expect("read");
                off += n as u64;
                let (w, b) = c.write_all(b).await;
                w.expect("send");
                buf = b;
            }
        }
        start.elapsed().as_secs_f64()
    });
    assert_eq!(sink.join().unwrap(), total);
    s.shutdown();
    total as f64 / secs / 1e9
}

fn make_file(path: &Path, bytes: u64) {
    let mut f = std::fs::File::create(path).expect("create bench file");
    let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_all().unwrap();
    // Warm the page cache.
    let mut r = std::fs::File::open(path).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    while r.read(&mut sink).unwrap() > 0 {}
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let mut rounds = 3;
    let mut file_mib = 256u64;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).unwrap_or(3),
            "--file-mib" => file_mib = it.next().and_then(|v| v.parse().ok()).unwrap_or(256),
            // `cargo bench` passes --bench; `cargo test --benches` too.
            "--bench" => {}
            _ => {}
        }
    }
    let dir = std::env::temp_dir();
    let big: PathBuf = dir.join(format!("coro-bench-io-{}.dat", std::process::id()));
    let small: PathBuf = dir.join(format!("coro-bench-io-{}.1m", std::process::id()));
    let size = file_mib << 20;
    make_file(&big, size);
    make_file(&small, 1 << 20);

    type Row = (
        &'static str,
        &'static str,
        Box<dyn Fn(DriverKind) -> f64>,
        Option<Box<dyn Fn() -> f64>>,
    );
    let (b1, b2, b3, b4, sm) = (
        big.clone(),
        big.clone(),
        big.clone(),
        big.clone(),
        small.clone(),
    );
    let rows: Vec<Row> = vec![
        (
            "file read 1 KiB, 1 in flight",
            "GB/s",
            Box::new(move |k| file_read(k, &b1, size / 16, 1024, 1)),
            Some(Box::new({
                let p = big.clone();
                move || tokio_file_read(&p, size / 16, 1024, 1)
            })),
        ),
        (
            "file read 1 KiB, 16 in flight",
            "GB/s",
            Box::new(move |k| file_read(k, &b2, size / 4, 1024, 16)),
            Some(Box::new({
                let p = big.clone();
                move || tokio_file_read(&p, size / 4, 1024, 16)
            })),
        ),
        (
            "file read 64 KiB, 1 in flight",
            "GB/s",
            Box::new(move |k| file_read(k, &b3, size, 65536, 1)),
            Some(Box::new({
                let p = big.clone();
                move || tokio_file_read(&p, size, 65536, 1)
            })),
        ),
        (
            "file read 64 KiB, 16 in flight",
            "GB/s",
            Box::new(move |k| file_read(k, &b4, size, 65536, 16)),
            Some(Box::new({
                let p = big.clone();
                move || tokio_file_read(&p, size, 65536, 16)
            })),
        ),
        (
            "TCP round trip, 64 B",
            "us/RTT",
            Box::new(|k| tcp_rtt(k, 20_000)),
            None,
        ),
        (
            "download 1 MiB in 1 KiB chunks",
            "GB/s",
            Box::new(move |k| download(k, &sm, 64)),
            None,
        ),
    ];
    let mut res: Vec<[Vec<f64>; 3]> = rows
        .iter()
        .map(|_| [Vec::new(), Vec::new(), Vec::new()])
        .collect();
    for round in 0..rounds {
        for (i, (name, unit, f, tokio)) in rows.iter().enumerate() {
            if let Some(t) = tokio {
                let v = t();
                eprintln!("round {} {name} tokio::fs: {v:.3} {unit}", round + 1);
                res[i][2].push(v);
            }
            // Alternate which driver goes first.
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for d in order {
                let kind = [DriverKind::IoUring, DriverKind::Epoll][d];
                let v = f(kind);
                eprintln!("round {} {name} {kind:?}: {v:.3} {unit}", round + 1);
                res[i][d].push(v);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    println!("\nmedians of {rounds} interleaved rounds ({file_mib} MiB file, page cache warm)\n");
    println!(
        "| benchmark | unit | io_uring | epoll | io_uring/epoll | tokio::fs | io_uring/tokio | epoll/tokio |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (i, (name, unit, _, _)) in rows.iter().enumerate() {
        let u = median(&mut res[i][0]);
        let e = median(&mut res[i][1]);
        let t = if res[i][2].is_empty() {
            "| | |".to_owned()
        } else {
            let t = median(&mut res[i][2]);
            format!("{t:.3} | {:.2} | {:.2} |", u / t, e / t)
        };
        println!("| {name} | {unit} | {u:.3} | {e:.3} | {:.2} | {t}", u / e);
    }
    let _ = std::fs::remove_file(&big);
    let _ = std::fs::remove_file(&small);
}
