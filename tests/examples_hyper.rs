//! The hyper example serves real HTTP/1.1 on both drivers: curl (when
//! installed) and a raw socket check routes, bodies and keep-alive.
//! (Feature `hyper`: `cargo test --features hyper`, or `--all-features`.)
#![cfg(feature = "hyper")]

mod common;
use common::{Server, example_bin};

use std::io::{Read, Write};
use std::process::Command;

fn curl(args: &[&str]) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// Read one response with a `content-length` from `s`: (status line, body).
fn response(s: &mut std::net::TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed mid-head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .expect("content-length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head.lines().next().unwrap().to_owned(), body)
}

#[test]
fn hyper_server_on_both_drivers() {
    for driver in ["epoll", "uring"] {
        let srv = Server::start("hyper_server", &["--driver", driver]);
        let base = format!("http://{}", srv.addr);

        // Two requests, one connection (keep-alive), raw.
        let mut s = srv.connect();
        for _ in 0..2 {
            s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let (status, body) = response(&mut s);
            assert_eq!(status, "HTTP/1.1 200 OK", "{driver}");
            assert_eq!(body, b"Hello, World!");
        }
        // A POST body comes back; an unknown path is 404.
        let payload = "x".repeat(100_000);
        let req = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{payload}",
            payload.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let (status, body) = response(&mut s);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(body == payload.as_bytes(), "{driver}: echo body differs");
        s.write_all(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(response(&mut s).0, "HTTP/1.1 404 Not Found");
        // A declared body above the limit is refused from the head: no
        // `100 Continue` invites a body that would be thrown away.
        s.write_all(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            response(&mut s).0,
            "HTTP/1.1 413 Payload Too Large",
            "{driver}"
        );

        // And a real client, if there is one.
        if let Some(got) = curl(&[&format!("{base}/")]) {
            assert_eq!(got, "Hello, World!");
            assert_eq!(
                curl(&["-d", "from curl", &format!("{base}/echo")]).unwrap(),
                "from curl"
            );
            let code = curl(&[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("{base}/x"),
            ])
            .unwrap();
            assert_eq!(code, "404");
            // Keep-alive: curl reuses its connection for the second URL.
            // (Counted by curl itself: its verbose wording of a reuse
            // changed across versions.)
            let out = Command::new("curl")
                .args(["-s", "--max-time", "5", "-w", "[%{num_connects}]"])
                .args(["-o", "/dev/null", "-o", "/dev/null"])
                .args([&format!("{base}/"), &format!("{base}/")])
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "[1][0]",
                "the second request did not reuse the connection: {out:?}"
            );
        } else {
            eprintln!("curl not installed: checked with the raw client only");
        }
    }
}

#[test]
fn help_prints_the_usage() {
    let mut child = Command::new(example_bin("hyper_server"))
        .arg("--help")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a server that took `--help` for a start would never exit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("hyper_server --help did not exit");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(out.starts_with("usage: hyper_server"), "{out}");
}
