//! `coro::Generator<T>`: a coroutine that yields values, used as an iterator
//! (libcoro's `coro_generator` example).
//!
//! Expected output: `0, 1, 2, ..., 100, ` on one line.

use std::io::Write;

use coro::{Generator, Task, Yielder};

// README-BEGIN: the code README shows (tests/readme.rs checks it)
fn task(count_to: u64) -> Task<()> {
    Task::new(async move {
        // A generator that yields an incrementing number each time it is asked.
        let r#gen = || {
            Generator::new(|y: Yielder<u64>| async move {
                let mut i = 0;
                loop {
                    y.yield_(i).await;
                    i += 1;
                }
            })
        };

        // Take the next number until it reaches `count_to`.
        let mut out = std::io::stdout().lock();
        for val in r#gen() {
            write!(out, "{val}, ").expect("stdout");
            if val >= count_to {
                break;
            }
        }
        writeln!(out).expect("stdout");
    })
}
// README-END

fn main() {
    coro::sync_wait(task(100));
}
