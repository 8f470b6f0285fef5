//! Runs `examples/thread_pool.rs` and checks its output against libcoro's.

mod common;
use common::example_bin;

use std::process::Command;

#[test]
fn thread_pool_example_output() {
    let out = Command::new(example_bin("thread_pool"))
        .output()
        .expect("run the thread_pool example");
    assert!(out.status.success(), "example failed: {out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();

    let indices = |prefix: &str, suffix: &str| -> Vec<usize> {
        let mut v: Vec<usize> = lines
            .iter()
            .filter_map(|l| l.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        indices("thread pool worker ", " is starting up."),
        [0, 1, 2, 3]
    );
    assert_eq!(
        indices("thread pool worker ", " is shutting down."),
        [0, 1, 2, 3]
    );
    assert_eq!(
        indices("Task ", " is yielding()"),
        (0..10).collect::<Vec<_>>()
    );

    let result_at = lines
        .iter()
        .position(|l| l.starts_with("calculated thread pool result = "))
        .expect("result line");
    let result: u64 = lines[result_at]
        .trim_start_matches("calculated thread pool result = ")
        .parse()
        .unwrap();
    // 10,000,000 fair coin flips: mean 5,000,000, standard deviation ~1,581.
    assert!(
        (4_980_000..=5_020_000).contains(&result),
        "implausible result {result}"
    );
    // Every child yielded before the result; workers stop after it.
    let last_yield = lines.iter().rposition(|l| l.ends_with("is yielding()"));
    assert!(last_yield.unwrap() < result_at);
    let first_stop = lines.iter().position(|l| l.ends_with("is shutting down."));
    assert!(first_stop.unwrap() > result_at);
    assert_eq!(lines.len(), 4 + 10 + 1 + 4, "unexpected lines: {stdout}");
}
