//! An accept loop that runs out of fds (EMFILE) must neither spin nor
//! exit, and must serve again once fds free up.
//!
//! The server runs in a child process (this test binary, re-executed with
//! `CORO_NET_EMFILE_CHILD=<driver>` and the ignored `emfile_child_server`
//! test selected) with `RLIMIT_NOFILE` lowered to a few fds above what it
//! already has open. The parent fills those fds with connections, checks
//! that the next connection waits unserved while the child's CPU time stays
//! low, frees a few, and checks that the waiting connection is then served.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::thread;
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
            let (conn, peer) = listener.accept().await.expect("accept gave up");
            // For the parent: which connections got an fd (stderr, the
            // pipe the pause line comes through, so the order holds).
            eprintln!("{ACCEPTED} {peer}");
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

/// The child's stderr, read line by line on a thread so that the parent
/// can ask whether the accept loop has said it pauses, without blocking.
struct ChildLog {
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    reader: thread::JoinHandle<()>,
}

const PAUSE_LOG: &str = "pausing and retrying";
const ACCEPTED: &str = "accepted";

impl ChildLog {
    fn new(stderr: ChildStderr) -> ChildLog {
        let (tx, lines) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).split(b'\n') {
                let Ok(line) = line else { return };
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    return;
                }
            }
        });
        ChildLog {
            lines,
            seen: Vec::new(),
            reader,
        }
    }

    fn paused(&mut self) -> bool {
        self.seen.extend(self.lines.try_iter());
        self.seen.iter().any(|l| l.contains(PAUSE_LOG))
    }

    /// Whether the child said it accepted the connection from `peer`.
    fn accepted(&mut self, peer: SocketAddr) -> bool {
        self.seen.extend(self.lines.try_iter());
        let line = format!("{ACCEPTED} {peer}");
        self.seen.contains(&line)
    }

    /// Everything the child wrote, once it has exited.
    fn finish(self) -> Vec<String> {
        let mut seen = self.seen;
        self.reader.join().unwrap();
        seen.extend(self.lines.try_iter());
        seen
    }
}

/// Send one byte and wait for the "ok": true once it comes; false once the
/// child's accept loop says it pauses for want of fds and has not said it
/// accepted this connection. A slow answer is not taken for a missing one
/// (a fixed window was, on a loaded machine), and neither is an accepted
/// connection whose answer is late: the pause line can come before the
/// answer to the connection that took the last fd (the next accept fails
/// at once, with nobody connecting). Without the pause line this waits up
/// to 60 s.
fn served_unless_paused(c: &mut TcpStream, log: &mut ChildLog) -> bool {
    let me = c.local_addr().unwrap();
    // Ticks seen with the pause logged and this connection not accepted:
    // two in a row (200 ms) before calling it unserved, in case a retry
    // after the pause found an fd the child freed on its own.
    let mut unaccepted = 0;
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    if c.write_all(b"?").is_err() {
        return false;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut b, mut got) = ([0u8; 2], 0);
    loop {
        match c.read(&mut b[got..]) {
            Ok(0) => return false,
            Ok(n) => {
                got += n;
                if got == 2 {
                    return &b == b"ok";
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if log.paused() && !log.accepted(me) {
                    unaccepted += 1;
                    if unaccepted == 2 {
                        return false;
                    }
                } else {
                    unaccepted = 0;
                }
                assert!(
                    Instant::now() < deadline,
                    "no answer and no pause line from the child in 60 s"
                );
            }
            Err(_) => return false,
        }
    }
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
    let mut log = ChildLog::new(child.0.stderr.take().unwrap());
    // Fill the child's spare fds; the first connection left unserved while
    // the child says it pauses marks EMFILE.
    let mut held = Vec::new();
    let mut waiting = None;
    for _ in 0..SPARE_FDS * 4 {
        let mut c = TcpStream::connect(addr).unwrap();
        if served_unless_paused(&mut c, &mut log) {
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
    let err = log.finish().join("\n");
    let logs = err.matches(PAUSE_LOG).count();
    assert_eq!(logs, 1, "expected exactly one EMFILE log line, got:\n{err}");
}
