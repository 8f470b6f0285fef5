//! `coro_io::stdin()`: the test runs itself again as a child process with
//! a pipe as its standard input (the child's part is picked by an
//! environment variable), so that what it reads is known.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::io::AsyncReadExt;

const CHILD: &str = "CORO_STDIO_TEST_CHILD";

/// Run this test binary's `test` as a child with `input` on its stdin;
/// its stdout, within a bound.
fn child_output(test: &str, input: &'static [u8]) -> String {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(input);
    });
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let out = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let status = child.wait().unwrap();
    let out = out.expect("the child did not finish within 30 s");
    assert!(status.success(), "child failed: {status}\n{out}");
    out
}

#[test]
fn a_dropped_stdin_keeps_what_it_was_not_asked_for() {
    if std::env::var_os(CHILD).is_some() {
        futures::executor::block_on(async {
            let mut first = [0u8; 4];
            coro_io::stdin().read_exact(&mut first).await.unwrap();
            // A new handle (as a `coro_io::stdin().read(..)` per call
            // makes): it gets the rest, not only what the first left.
            let mut rest = Vec::new();
            coro_io::stdin().read_to_end(&mut rest).await.unwrap();
            println!(
                "<{}|{}>",
                String::from_utf8_lossy(&first),
                String::from_utf8_lossy(&rest)
            );
        });
        return;
    }
    let out = child_output(
        "a_dropped_stdin_keeps_what_it_was_not_asked_for",
        b"abcdefgh",
    );
    assert!(out.contains("<abcd|efgh>"), "{out}");
}
