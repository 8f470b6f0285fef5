//! Runs the `dns_lookup` example (feature `dns`) against the test DNS server
//! of coro-net on 127.0.0.1 and checks its output and exit status.
//! `cargo test -p coro --features dns` builds the example first (a bare
//! `--test examples_dns` does not: `cargo build --features dns --example
//! dns_lookup` before it).
#![cfg(feature = "dns")]

mod common;
use common::example_bin;

#[path = "../coro-net/tests/common/dns_server.rs"]
mod dns_server;

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(example_bin("dns_lookup"))
        .args(args)
        .output()
        .expect("run dns_lookup")
}

#[test]
fn forward_and_reverse_against_the_test_server() {
    let srv = dns_server::DnsServer::start();
    let server = srv.addr().to_string();
    let out = run(&[
        "--server",
        &server,
        "--timeout",
        "300",
        "--tries",
        "2",
        "v6.coro.test",
        "192.0.2.1",
        "2001:db8::6",
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "v6.coro.test -> 2001:db8::6\n192.0.2.1 <- a.coro.test\n2001:db8::6 <- v6.coro.test\n"
    );
    assert!(srv.udp_queries() >= 3);
}

#[test]
fn a_failed_lookup_is_reported_and_sets_the_exit_status() {
    let srv = dns_server::DnsServer::start();
    let server = srv.addr().to_string();
    let out = run(&[
        "--server",
        &server,
        "nope.coro.test.",
        "servfail.coro.test.",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "nope.coro.test.: name not found\nservfail.coro.test.: dns server failed to answer (servfail)\n"
    );
}

#[test]
fn bad_usage_exits_2() {
    let out = run(&["--server", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
    let out = run(&["--tries", "0", "localhost"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn no_arguments_resolves_localhost_both_ways() {
    // Whatever the hosts file lacks goes to the test server, never off the machine.
    let srv = dns_server::DnsServer::start();
    let server = srv.addr().to_string();
    let out = run(&["--server", &server]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    let mut lines = stdout.lines();
    let fwd = lines.next().unwrap();
    assert!(fwd.starts_with("localhost -> "), "{fwd}");
    assert!(
        fwd["localhost -> ".len()..]
            .split(' ')
            .all(|ip| ip.parse::<std::net::IpAddr>().unwrap().is_loopback()),
        "{fwd}"
    );
    // The reverse name comes from the machine's hosts file.
    assert!(lines.next().unwrap().starts_with("127.0.0.1"));
}
