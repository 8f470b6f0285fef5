//! What the example-running tests share: finding an example's binary.

#![allow(dead_code)] // each test crate uses part of this

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The newest built binary of example `name`: `target/<profile>/examples/`
/// holds `name` and, from some cargo invocations, `name-<16 hex digits>`.
///
/// # Panics
///
/// If the example was not built (run `cargo test -p coro`, which builds the
/// examples, or `cargo build --examples`).
pub(crate) fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps")
        .join("examples");
    let is_candidate = |file: &str| {
        file == name
            || file
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(is_candidate))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "example {name} not built in {}: run `cargo test -p coro` \
                 (or `cargo build --examples`)",
                dir.display()
            )
        })
}

/// A server example running in the background, killed (by its pid) on drop.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    /// The rest of its stdout (kept open: a closed pipe would make its
    /// later prints fail).
    pub(crate) stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    pub(crate) fn start(name: &str, args: &[&str]) -> Server {
        let mut child = Command::new(example_bin(name))
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start server");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // "<name>: listening on [http://]127.0.0.1:PORT (...); press Ctrl-C to stop"
        assert!(
            line.contains("press Ctrl-C to stop"),
            "no stop hint: {line:?}"
        );
        let at = line
            .split("listening on ")
            .nth(1)
            .unwrap_or_else(|| panic!("{line:?}"));
        let at = at.trim_start_matches("http://");
        let addr = at.split_whitespace().next().unwrap().parse().unwrap();
        Server {
            child,
            addr,
            stdout,
        }
    }

    /// Send `signal` and wait (at most `bound`) for the server to exit;
    /// its exit status and what it printed after the first line.
    pub(crate) fn stop_with(
        mut self,
        signal: rustix::process::Signal,
        bound: Duration,
    ) -> (std::process::ExitStatus, String) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, signal).unwrap();
        let deadline = std::time::Instant::now() + bound;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit within {bound:?} of {signal:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut out = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut out).unwrap();
        (status, out)
    }

    pub(crate) fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
