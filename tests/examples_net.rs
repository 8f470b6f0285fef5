//! Runs the networking examples: the demos (`io_scheduler`, `udp_echo`) and
//! checks their output; starts `http_200_ok_server` on a free port and talks
//! to it with curl (keep-alive) and raw sockets (pipelining, split
//! requests, 400, 431, `Connection: close`, idle timeout); and
//! `tcp_echo_server` + `echo_client` together.
//!
//! `cargo test -p coro` builds the examples first; with a `--test` filter,
//! build them yourself (`cargo build --examples`).

mod common;
use common::{Server, example_bin};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn run(name: &str) -> String {
    let out = Command::new(example_bin(name))
        .output()
        .expect("run example");
    assert!(
        out.status.success(),
        "example {name} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn io_scheduler_example() {
    let out = run("io_scheduler");
    let lines: Vec<&str> = out.lines().collect();
    let mut all = lines.clone();
    all.sort();
    assert_eq!(
        all,
        [
            "client: Hello from server.",
            "io_scheduler::process event thread start",
            "io_scheduler::process event thread stop",
            "io_scheduler::thread_pool worker 0 starting",
            "io_scheduler::thread_pool worker 0 stopping",
            "io_scheduler::thread_pool worker 1 starting",
            "io_scheduler::thread_pool worker 1 stopping",
            "server: Hello from client.",
        ],
        "{out}"
    );
    // Only what the program orders. Three threads start at once and one
    // worker may run both tasks before another thread has printed its start
    // line (CI saw worker 0's line after the server's; an op that is ready
    // may complete without the event thread), so a start is only ordered
    // before its own stop. The reply follows the request; the stops come
    // from `shutdown()`, after `sync_wait` saw both tasks end.
    let at = |line: &str| lines.iter().position(|l| *l == line).unwrap();
    let server = at("server: Hello from client.");
    let client = at("client: Hello from server.");
    let event_start = at("io_scheduler::process event thread start");
    assert!(
        event_start < at("io_scheduler::process event thread stop"),
        "{out}"
    );
    assert!(server < client, "{out}");
    for stop in [
        "io_scheduler::process event thread stop",
        "io_scheduler::thread_pool worker 0 stopping",
        "io_scheduler::thread_pool worker 1 stopping",
    ] {
        assert!(client < at(stop), "{out}");
    }
    for i in 0..2 {
        let start = at(&format!("io_scheduler::thread_pool worker {i} starting"));
        assert!(
            start < at(&format!("io_scheduler::thread_pool worker {i} stopping")),
            "{out}"
        );
    }
}

#[test]
fn udp_echo_example_self_test() {
    let expected: String = std::iter::once("server: echoing datagrams on a free port\n".to_owned())
        .chain(
            (0..5).map(|i| format!("client: sent \"datagram {i}\", got \"datagram {i}\" back\n")),
        )
        .chain(std::iter::once("udp_echo: 5 datagrams echoed\n".to_owned()))
        .collect();
    assert_eq!(run("udp_echo"), expected);
}

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";

fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).unwrap();
    v
}

/// Everything until the server closes (fails on a read timeout).
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v)
        .expect("the server did not close the connection");
    v
}

/// `--help` prints the usage and exits 0; an echo load that got no echo
/// back fails instead of reporting a rate of zero as a result.
#[test]
fn help_prints_the_usage_and_a_silent_echo_fails_the_load() {
    for example in ["http_200_ok_server", "tcp_echo_server", "echo_client"] {
        let out = Command::new(example_bin(example))
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{example}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("usage: "),
            "{example}: {out:?}"
        );
    }
    // A server that accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let out = Command::new(example_bin("echo_client"))
        .args(["--addr", &addr, "--conns", "2", "--secs", "1"])
        .output()
        .unwrap();
    drop(silent);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no message came back"),
        "{out:?}"
    );
}

/// A second server started on a port one already listens on fails with a
/// clear error instead of sharing the port through `SO_REUSEPORT` (the
/// kernel would split the connections between the two).
#[test]
fn a_second_server_on_a_taken_port_fails() {
    let first = Server::start("http_200_ok_server", &["--threads", "1"]);
    let port = first.addr.port().to_string();
    for example in ["http_200_ok_server", "tcp_echo_server"] {
        let mut second = Command::new(example_bin(example))
            .args(["--port", &port, "--threads", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // It must give up at once; one that serves instead is stopped here.
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(st) = second.try_wait().unwrap() {
                break Some(st);
            }
            if Instant::now() >= deadline {
                let _ = second.kill();
                let _ = second.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        let _ = second.stderr.take().unwrap().read_to_string(&mut err);
        let status = status.unwrap_or_else(|| panic!("{example} shared the taken port: {err}"));
        assert_eq!(status.code(), Some(1), "{example}: {err}");
        assert!(err.contains("cannot listen on"), "{example}: {err}");
    }
}

#[test]
fn http_server_with_curl_keep_alive() {
    let srv = Server::start("http_200_ok_server", &["--threads", "2"]);
    let url = format!("http://{}/", srv.addr);
    let out = match Command::new("curl")
        .args(["-s", "--http1.1", "-w", "[%{http_code} %{num_connects}]"])
        .args([&url, &url, &url])
        .output()
    {
        Ok(o) => o,
        Err(e) if std::env::var_os("CORO_SKIP_CURL").is_some() => {
            eprintln!("skipping: curl not runnable ({e})");
            return;
        }
        Err(e) => panic!("curl is needed (scripts/test installs it; CORO_SKIP_CURL=1 skips): {e}"),
    };
    assert!(out.status.success(), "curl failed: {out:?}");
    // Three answers, one connection: the second and third reuse the first.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello, World![200 1]Hello, World![200 0]Hello, World![200 0]"
    );
}

#[test]
fn http_server_pipelining_and_split_requests() {
    let srv = Server::start("http_200_ok_server", &["--threads", "1"]);
    let mut s = srv.connect();
    // Three requests in one write: three responses, in order.
    s.write_all(&GET.repeat(3)).unwrap();
    assert_eq!(read_n(&mut s, OK.len() * 3), OK.repeat(3));
    // One request dribbled a few bytes at a time over several packets.
    for chunk in GET.chunks(5) {
        s.write_all(chunk).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(read_n(&mut s, OK.len()), OK);
    // Two and a half requests, then the rest of the third.
    let three = GET.repeat(3);
    let cut = GET.len() * 2 + 7;
    s.write_all(&three[..cut]).unwrap();
    assert_eq!(read_n(&mut s, OK.len() * 2), OK.repeat(2));
    s.write_all(&three[cut..]).unwrap();
    assert_eq!(read_n(&mut s, OK.len()), OK);
    // A body is consumed by Content-Length, not taken as the next request.
    s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nGET ")
        .unwrap();
    s.write_all(GET).unwrap();
    assert_eq!(read_n(&mut s, OK.len() * 2), OK.repeat(2));
}

#[test]
fn http_server_closes_when_asked() {
    let srv = Server::start("http_200_ok_server", &["--threads", "1"]);
    let mut s = srv.connect();
    s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let got = read_to_close(&mut s);
    assert!(
        got.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(got.windows(17).any(|w| w == b"Connection: close"));
    // HTTP/1.0 without keep-alive closes too.
    let mut s = srv.connect();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(read_to_close(&mut s).starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[test]
fn http_server_rejects_garbage_with_400() {
    let srv = Server::start("http_200_ok_server", &["--threads", "1"]);
    let mut s = srv.connect();
    s.write_all(GET).unwrap();
    assert_eq!(read_n(&mut s, OK.len()), OK);
    s.write_all(b"\x16\x03\x01 this is not HTTP\r\n\r\nmore junk after it")
        .unwrap();
    let got = read_to_close(&mut s);
    assert!(
        got.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn http_server_rejects_huge_heads_with_431() {
    let srv = Server::start("http_200_ok_server", &["--threads", "1"]);
    let mut s = srv.connect();
    let mut req = b"GET / HTTP/1.1\r\nX-Huge: ".to_vec();
    req.resize(req.len() + 9 * 1024, b'h');
    req.extend_from_slice(b"\r\n\r\n");
    s.write_all(&req).unwrap();
    let got = read_to_close(&mut s);
    assert!(
        got.starts_with(b"HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

/// The framing itself (the server's `examples/common/http.rs`): a head
/// past the 8 KiB limit with a malformed byte beyond the limit is a 431
/// whether it came in one read or two; parsing the whole buffer made it a
/// 400 in one read and a 431 split (found by a review of the fuzz target,
/// which checks that the answer never depends on the split).
#[test]
fn a_head_past_the_limit_gets_the_same_answer_however_it_is_split() {
    #[path = "../examples/common/http.rs"]
    #[allow(dead_code, unreachable_pub)]
    mod http;

    let mut req = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    req.resize(http::MAX_HEAD + 100, b'h');
    req.extend_from_slice(b"\x01\r\n\r\n"); // malformed, past the limit
    let answer = |chunks: &[&[u8]]| {
        let mut input = Vec::new();
        let mut out = Vec::new();
        for c in chunks {
            input.extend_from_slice(c);
            let (used, close) = http::respond(&input, &mut out);
            input.drain(..used);
            if close {
                break;
            }
        }
        out
    };
    let whole = answer(&[&req]);
    assert!(
        whole.starts_with(b"HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&whole)
    );
    for k in [1, 100, http::MAX_HEAD, http::MAX_HEAD + 1, req.len() - 3] {
        assert_eq!(answer(&[&req[..k], &req[k..]]), whole, "split at {k}");
    }
}

#[test]
fn http_server_closes_idle_connections() {
    let srv = Server::start(
        "http_200_ok_server",
        &["--threads", "1", "--idle-ms", "500"],
    );
    // The clock starts before the connection: the server reads the request
    // after `t0`, and closes no sooner than one idle period after its last
    // read, so `waited >= idle` holds however this thread is scheduled.
    // (Started after the response, a descheduled client saw less.)
    let t0 = Instant::now();
    let mut s = srv.connect();
    s.write_all(GET).unwrap();
    assert_eq!(read_n(&mut s, OK.len()), OK);
    assert!(read_to_close(&mut s).is_empty());
    let waited = t0.elapsed();
    // Closed after 1 to 2 idle periods (the timer is re-armed lazily).
    assert!(
        waited >= Duration::from_millis(500),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "closed too late: {waited:?}"
    );
}

/// A peer that sends requests and never reads the answers: the server's
/// write waits for ever unless the idle timer bounds it too.
#[test]
fn http_server_closes_a_connection_that_never_reads() {
    use rustix::net::{AddressFamily, SocketType, sockopt};
    let srv = Server::start(
        "http_200_ok_server",
        &["--threads", "1", "--idle-ms", "300"],
    );
    // A small receive window: the server's answers fill it soon.
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    sockopt::set_socket_recv_buffer_size(&fd, 4096).unwrap();
    rustix::net::connect(&fd, &srv.addr).unwrap();
    let mut s = TcpStream::from(fd);
    s.set_nonblocking(true).unwrap();
    let batch = GET.repeat(256);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.write(&batch) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => break, // reset: the server closed it
        }
        assert!(
            Instant::now() < deadline,
            "the server kept a connection whose peer never reads"
        );
    }
}

/// A peer that sends a request a byte at a time (slowloris): each read
/// completes, but no request does, so the connection is closed as idle.
#[test]
fn http_server_closes_a_request_sent_a_byte_at_a_time() {
    let srv = Server::start(
        "http_200_ok_server",
        &["--threads", "1", "--idle-ms", "300"],
    );
    let mut s = srv.connect();
    s.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    s.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut b = [0u8; 64];
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if s.write_all(b"a").is_err() {
            break;
        }
        match s.read(&mut b) {
            Ok(0) => break, // closed
            Ok(n) => panic!("unexpected answer: {:?}", String::from_utf8_lossy(&b[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        assert!(
            Instant::now() < deadline,
            "the server kept a connection whose request never ends"
        );
    }
}

#[test]
fn tcp_echo_server_with_echo_client() {
    let srv = Server::start("tcp_echo_server", &["--threads", "1"]);
    // The raw protocol first.
    let mut s = srv.connect();
    s.write_all(b"echo me").unwrap();
    assert_eq!(read_n(&mut s, 7), b"echo me");
    drop(s);
    let out = Command::new(example_bin("echo_client"))
        .args(["--addr", &srv.addr.to_string()])
        .args([
            "--conns",
            "8",
            "--len",
            "512",
            "--secs",
            "1",
            "--threads",
            "1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("msgs/s") && text.contains("MB/s"), "{text}");
    let msgs: u64 = text
        .rsplit_once('(')
        .and_then(|(_, r)| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no message count in {text:?}"));
    assert!(msgs > 0, "{text}");
}

#[test]
fn tls_echo_self_test() {
    let out = run("tls_echo");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 9, "{out}");
    assert!(
        lines[2].starts_with("client: connected to localhost: TLSv1_3, TLS13_")
            && lines[2].ends_with(", ALPN coro-echo"),
        "{out}"
    );
    assert_eq!(lines[4], "client: sent \"hello\", got \"hello\" back");
    assert_eq!(
        lines[7],
        "client: close_notify sent, and the server's received"
    );
    assert_eq!(lines[8], "tls_echo: 3 messages echoed over TLS");
}

/// A certificate for localhost made now, written as PEM files into a fresh
/// directory: (dir, cert.pem, key.pem).
fn tls_files(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("coro-examples-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
    (dir, cert, key)
}

fn tls_echo_client(addr: SocketAddr, ca: &std::path::Path, message: &str) -> String {
    let out = Command::new(example_bin("tls_echo"))
        .args([
            "--mode",
            "client",
            "--addr",
            &addr.to_string(),
            "--message",
            message,
        ])
        .arg("--ca")
        .arg(ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn tcp_echo_server_with_tls_and_the_tls_echo_client() {
    let (dir, cert, key) = tls_files("tcp-echo");
    let srv = Server::start(
        "tcp_echo_server",
        &[
            "--threads",
            "1",
            "--tls",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    let out = tls_echo_client(srv.addr, &cert, "echo me securely");
    assert!(out.contains("got \"echo me securely\" back"), "{out}");
    // Plain TCP gets no echo: the server wants a ClientHello.
    let mut s = srv.connect();
    s.write_all(b"plain text\r\n\r\n").unwrap();
    let got = read_to_close(&mut s);
    assert!(!got.starts_with(b"plain text"), "{got:?}");
    // A bad key file is a clear error at start-up.
    let out = Command::new(example_bin("tcp_echo_server"))
        .args(["--port", "0", "--tls", "--cert", cert.to_str().unwrap()])
        .args(["--key", cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no private key"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tls_echo_server_mode_with_its_client_mode() {
    let (dir, cert, key) = tls_files("tls-echo");
    let srv = Server::start(
        "tls_echo",
        &[
            "--mode",
            "server",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    let out = tls_echo_client(srv.addr, &cert, "round trip");
    assert!(
        out.starts_with("client: connected to localhost at "),
        "{out}"
    );
    assert!(out.contains("got \"round trip\" back"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Ctrl-C: the server stops accepting, gives the open connections
/// `--drain-ms` to finish, closes the rest, prints a summary and exits 0.
#[test]
fn http_server_stops_gracefully_on_sigint() {
    let srv = Server::start(
        "http_200_ok_server",
        &["--threads", "2", "--drain-ms", "300"],
    );
    let addr = srv.addr;
    // One answered request, then an idle keep-alive connection.
    let mut c = srv.connect();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
    let (status, out) = srv.stop_with(rustix::process::Signal::INT, Duration::from_secs(10));
    assert!(status.success(), "{status}: {out}");
    assert!(out.contains("SIGINT: no new connections"), "{out}");
    assert!(
        out.contains("stopped: 1 connections served, 1 still open at the deadline were closed"),
        "{out}"
    );
    // The idle connection was closed; nothing listens any more.
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// SIGTERM works the same, and a connection that finishes within the
/// drain time is not counted as cut off.
#[test]
fn tcp_echo_server_stops_gracefully_on_sigterm() {
    let srv = Server::start("tcp_echo_server", &["--threads", "1", "--drain-ms", "2000"]);
    let mut c = srv.connect();
    c.write_all(b"hello").unwrap();
    assert_eq!(read_n(&mut c, 5), b"hello");
    let closer = std::thread::spawn(move || {
        // The client leaves on its own during the drain.
        std::thread::sleep(Duration::from_millis(100));
        drop(c);
    });
    let (status, out) = srv.stop_with(rustix::process::Signal::TERM, Duration::from_secs(10));
    closer.join().unwrap();
    assert!(status.success(), "{status}: {out}");
    assert!(out.contains("SIGTERM: no new connections"), "{out}");
    assert!(
        out.contains("stopped: 1 connections served, 0 still open at the deadline were closed"),
        "{out}"
    );
}

/// README's first example: echoes, and Ctrl-C ends it with status 0.
#[test]
fn quickstart_echoes_and_stops_on_ctrl_c() {
    let srv = Server::start("quickstart", &[]);
    let mut c = srv.connect();
    c.write_all(b"hello, coro").unwrap();
    assert_eq!(read_n(&mut c, 11), b"hello, coro");
    let (status, _) = srv.stop_with(rustix::process::Signal::INT, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

/// A misspelled or unknown flag is an error with the usage, exit 2: it
/// used to be ignored, and the program ran with the defaults as if it had
/// understood (`--thread 1` ran one thread per core).
#[test]
fn unknown_flags_are_usage_errors() {
    for (example, args) in [
        ("http_200_ok_server", &["--thread", "1"][..]),
        ("tcp_echo_server", &["--con", "1000"][..]),
        ("echo_client", &["--drain", "10"][..]),
        ("udp_echo", &["--prot", "9000"][..]),
        ("tls_echo", &["--mod", "server"][..]),
    ] {
        let out = Command::new(example_bin(example))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{example}: {err}");
        assert!(
            err.contains(&format!("unknown flag {}", args[0])),
            "{example}: {err}"
        );
        assert!(err.contains("usage:"), "{example}: {err}");
    }
    // Counts out of range are usage errors, not rounded to something that
    // runs (`--threads 0` ran one thread) or an abort (a huge `--len`).
    for (example, args) in [
        ("http_200_ok_server", &["--threads", "0"][..]),
        ("tcp_echo_server", &["--threads", "100000"][..]),
        ("echo_client", &["--conns", "0"][..]),
        ("echo_client", &["--len", "1000000000000"][..]),
        ("echo_client", &["--threads", "0"][..]),
        ("http_200_ok_server", &["--idle-ms", "0"][..]),
    ] {
        // Bounded: a server that took the value would run until killed.
        let mut child = Command::new(example_bin(example))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("{example} {args:?} took the value and ran");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{example} {args:?}: {err}");
        assert!(
            err.contains(&format!("{} must be from", args[0])),
            "{example}: {err}"
        );
    }
    // And bad durations are usage errors, not panics.
    for secs in ["-1", "nan", "1e300"] {
        let out = Command::new(example_bin("echo_client"))
            .args(["--secs", secs])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--secs {secs}: {err}");
        assert!(!err.contains("panicked"), "--secs {secs}: {err}");
    }
}

/// The self-test over IPv6 loopback (its client socket was IPv4: the
/// connect failed with `EAFNOSUPPORT`).
#[test]
fn udp_echo_example_self_test_over_ipv6() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    }
    let out = Command::new(example_bin("udp_echo"))
        .args(["--host", "::1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("5 datagrams echoed"), "{text}");
}
