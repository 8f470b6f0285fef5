//! An accept loop that runs out of fds (EMFILE) must neither spin nor
//! exit, and must serve again once fds free up.
//!
//! The server runs in a child process (this test binary, re-executed with
//! `CORO_NET_EMFILE_CHILD=<driver>` and the ignored `emfile_child_server`
//! test selected) with `RLIMIT_NOFILE` lowered to a few fds above what it
//! already has open. The parent fills those fds with connections, checks
//! that the next connection waits unserved while the child's CPU time stays
//! low, frees a few, and checks that the waiting connection is then served.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coro_io::testing::Config;

const CHILD_ENV: &str = "CORO_NET_EMFILE_CHILD";
/// Fds the child may open beyond those it has when it lowers the limit.
const SPARE_FDS: u64 = 6;

coro_io::driver_tests!(accept_survives_emfile);

/// The child: lower the fd limit, then answer "ok" to every byte received,
/// keeping each connection open until its peer closes it.
#[test]
#[ignore = "helper: run in a child process by accept_survives_emfile"]
fn emfile_child_server() {
    let name = std::env::var(CHILD_ENV).unwrap_or_default();
    let cfg = Config::by_name(&name)
        .unwrap_or_else(|| panic!("{CHILD_ENV} does not name a configuration: {name:?}"));
    let sched = cfg.sched();
    let listener = coro_net::tcp::TcpListener::bind(&sched, "127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let mut lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    lim.current = Some(open + SPARE_FDS);
    rustix::process::setrlimit(rustix::process::Resource::Nofile, lim).unwrap();
    println!("PORT {port}");
    std::io::stdout().flush().unwrap();
    let s = sched.clone();
    let server = sched.spawn(async move {
        loop {
            // Never returns EMFILE: it pauses and retries inside.
            let (conn, _) = listener.accept().await.expect("accept gave up");
            drop(s.spawn(async move {
                let mut buf = Vec::with_capacity(16);
                loop {
                    let (n, b) = conn.read(buf).await;
                    match n {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if conn.write_all(b"ok".as_slice()).await.0.is_err() {
                        return;
                    }
                    buf = b;
                    buf.clear();
                }
            }));
        }
    });
    let _ = coro_core::sync_wait(server);
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the ")" of the command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0 // USER_HZ is 100 on Linux
}

/// Send one byte and wait up to `wait` for the "ok".
fn served(c: &mut TcpStream, wait: Duration) -> bool {
    c.set_read_timeout(Some(wait)).unwrap();
    if c.write_all(b"?").is_err() {
        return false;
    }
    let mut b = [0u8; 2];
    matches!(c.read_exact(&mut b), Ok(()) if &b == b"ok")
}

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn accept_survives_emfile(cfg: Config) {
    let tag = cfg.name;
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "emfile_child_server", "--nocapture"])
            .env(CHILD_ENV, tag)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let port: u16 = loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "child exited before listening"
        );
        if let Some(p) = line.trim().strip_prefix("PORT ") {
            break p.parse().unwrap();
        }
    };
    let addr = ("127.0.0.1", port);
    // Fill the child's spare fds; the first connection left unserved marks EMFILE.
    let mut held = Vec::new();
    let mut waiting = None;
    for _ in 0..SPARE_FDS * 4 {
        let mut c = TcpStream::connect(addr).unwrap();
        if served(&mut c, Duration::from_millis(300)) {
            held.push(c);
        } else {
            waiting = Some(c);
            break;
        }
    }
    let mut waiting = waiting.expect("every connection was served: the fd limit did not bite");
    assert!(!held.is_empty(), "not even one connection was served");
    // Exhausted: the accept loop must be pausing, not spinning.
    let (t0, c0) = (Instant::now(), cpu_seconds(pid));
    assert!(
        !served(&mut waiting, Duration::from_millis(700)),
        "served without a free fd?"
    );
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds(pid) - c0);
    assert!(
        cpu < 0.25 * wall,
        "the exhausted accept loop burned {cpu:.2} s CPU in {wall:.2} s"
    );
    // Free fds: the queued connection gets accepted and answered.
    held.truncate(held.len().saturating_sub(3));
    let mut b = [0u8; 2];
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    waiting
        .read_exact(&mut b)
        .expect("the waiting connection was never served");
    assert_eq!(&b, b"ok");
    let mut fresh = TcpStream::connect(addr).unwrap();
    assert!(
        served(&mut fresh, Duration::from_secs(5)),
        "a new connection was not served"
    );
    assert!(child.0.try_wait().unwrap().is_none(), "the server exited");
    drop(held);
    drop(fresh);
    drop(waiting);
    let _ = child.0.kill();
    let _ = child.0.wait();
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let logs = err.matches("pausing and retrying").count();
    assert_eq!(logs, 1, "expected exactly one EMFILE log line, got:\n{err}");
}
