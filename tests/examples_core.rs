//! Runs the coro-core examples (`sync_wait`, `when_all`, `when_any`, `task`,
//! `generator`) and checks that each prints what libcoro's README shows for
//! its counterpart. `cargo test` builds the examples before running this.

mod common;
use common::example_bin;

use std::process::Command;

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
fn sync_wait_example() {
    assert_eq!(
        run("sync_wait"),
        "Inline Result = 10\nOffload Result = 20\n"
    );
}

#[test]
fn when_all_example() {
    assert_eq!(run("when_all"), "2\n4\n6\n8\n10\nfirst: 1.21 second: 20\n");
}

#[test]
fn when_any_example() {
    assert_eq!(run("when_any"), "result = 1\nresult = -1\n");
}

#[test]
fn task_example() {
    assert_eq!(
        run("task"),
        "Task1 output = 9\n\
         12345678-1234-5678-9012-123456781234 has 90000 records.\n\
         Answer to everything = 42\n"
    );
}

#[test]
fn generator_example() {
    let expected: String = (0..=100).map(|i| format!("{i}, ")).collect();
    assert_eq!(run("generator"), format!("{expected}\n"));
}
