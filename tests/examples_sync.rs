//! Runs the coro-sync examples (`event`, `latch`, `mutex`, `shared_mutex`,
//! `semaphore`, `ring_buffer`, `queue`) and checks their output against what
//! libcoro's README shows, allowing for the orders that legitimately vary.
//! `cargo test` builds the examples before running this.

mod common;
use common::example_bin;

use std::collections::HashMap;

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

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.is_empty()).collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// "1, 22, 3, " -> [1, 22, 3]
fn numbers(line: &str) -> Vec<u64> {
    line.split(", ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

fn position(ls: &[&str], line: &str) -> usize {
    ls.iter()
        .position(|l| *l == line)
        .unwrap_or_else(|| panic!("missing line {line:?} in {ls:#?}"))
}

#[test]
fn event_example() {
    let out = run("event");
    let ls = lines(&out);
    assert_eq!(
        ls[..4],
        [
            "task 1 is waiting on the event...",
            "task 2 is waiting on the event...",
            "task 3 is waiting on the event...",
            "set task is triggering the event",
        ]
    );
    assert_eq!(
        sorted(ls[4..].to_vec()),
        [
            "task 1 event triggered, now resuming.",
            "task 2 event triggered, now resuming.",
            "task 3 event triggered, now resuming.",
        ]
    );
}

#[test]
fn latch_example() {
    let out = run("latch");
    let ls = lines(&out);
    assert_eq!(ls.len(), 12, "{out}");
    assert_eq!(ls[0], "latch task is now waiting on all children tasks...");
    assert_eq!(ls[11], "latch task dependency tasks completed, resuming.");
    for i in 1..=5 {
        let working = position(&ls, &format!("worker task {i} is working..."));
        let done = position(
            &ls,
            &format!("worker task {i} is done, counting down on the latch"),
        );
        assert!(working < done);
    }
}

#[test]
fn mutex_example() {
    let out = run("mutex");
    let ls = lines(&out);
    assert_eq!(ls.len(), 1, "{out}");
    assert_eq!(sorted(numbers(ls[0])), (1..=100).collect::<Vec<_>>());
}

#[test]
fn shared_mutex_example() {
    let out = run("shared_mutex");
    let ls = lines(&out);
    assert_eq!(ls.len(), 21, "{out}");
    let acquired = position(&ls, "exclusive task lock() acquired");
    assert!(position(&ls, "exclusive task lock()") < acquired);
    assert_eq!(position(&ls, "exclusive task unlock()"), acquired + 1);
    for i in 1..=3 {
        // The first three held the lock and released it before the writer got it.
        assert!(position(&ls, &format!("shared task {i} lock_shared() acquired")) < acquired);
        assert!(position(&ls, &format!("shared task {i} unlock_shared()")) < acquired);
    }
    for i in 4..=6 {
        // The last three asked while the writer waited, and had to wait behind it.
        assert!(position(&ls, &format!("shared task {i} lock_shared()")) < acquired);
        assert!(position(&ls, &format!("shared task {i} lock_shared() acquired")) > acquired);
    }
}

#[test]
fn semaphore_example() {
    let out = run("semaphore");
    let ls = lines(&out);
    assert_eq!(ls.len(), 1, "{out}");
    assert_eq!(sorted(numbers(ls[0])), (1..=100).collect::<Vec<_>>());
}

#[test]
fn ring_buffer_example() {
    let out = run("ring_buffer");
    let mut values = Vec::new();
    let mut per_consumer: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut shutdowns = Vec::new();
    let mut stop_signal = 0;
    for piece in out.split(['\n']).flat_map(|l| l.split("), ")) {
        let piece = piece.trim();
        if let Some(rest) = piece.strip_prefix("(id=") {
            let (id, v) = rest
                .trim_end_matches(')')
                .split_once(", v=")
                .expect("(id=.., v=..)");
            let (id, v): (u64, u64) = (id.parse().unwrap(), v.parse().unwrap());
            values.push(v);
            per_consumer.entry(id).or_default().push(v);
        } else if piece == "producer is sending stop signal" {
            stop_signal += 1;
        } else if let Some(rest) = piece.strip_prefix("consumer ") {
            let id: u64 = rest.split(' ').next().unwrap().parse().unwrap();
            assert!(
                rest.ends_with("shutting down, stop signal received"),
                "{piece}"
            );
            shutdowns.push(id);
        } else {
            assert!(piece.is_empty(), "unexpected output {piece:?}");
        }
    }
    assert_eq!(sorted(values), (1..=100).collect::<Vec<_>>());
    // Each consumer sees the values in the order they were produced.
    for vs in per_consumer.values() {
        assert!(vs.windows(2).all(|w| w[0] < w[1]), "{vs:?}");
    }
    assert_eq!(stop_signal, 1);
    assert_eq!(sorted(shutdowns), [0, 1, 2, 3]);
}

#[test]
fn queue_example() {
    let out = run("queue");
    let ls = lines(&out);
    assert_eq!(ls.len(), 25, "{out}");
    let mut counts = HashMap::new();
    for l in ls {
        let v: u64 = l
            .strip_prefix("consumed ")
            .expect("consumed <n>")
            .parse()
            .unwrap();
        *counts.entry(v).or_insert(0) += 1;
    }
    assert_eq!(counts, (0..5).map(|v| (v, 5)).collect());
}
