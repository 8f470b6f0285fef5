//! `coro::Task<T>`: the basic building block, lazy until awaited
//! (libcoro's `coro_task` example).
//!
//! Expected output:
//! ```text
//! Task1 output = 9
//! 12345678-1234-5678-9012-123456781234 has 90000 records.
//! Answer to everything = 42
//! ```
//! libcoro's output also has three "expensive_struct() move ..." lines from its
//! C++ move constructors. A Rust move is a plain memory copy with no user hook,
//! so there is nothing to print: the value below is moved out without copying
//! its records, which is what those lines demonstrate.

use coro::Task;

// README-BEGIN: the code README shows (tests/readme.rs checks it)
// A task that doubles its input.
fn double_task(x: u64) -> Task<u64> {
    Task::new(async move { x * 2 })
}

// A task that awaits the doubling of its input, then adds 5.
fn double_and_add_5_task(input: u64) -> Task<u64> {
    Task::new(async move {
        let doubled = double_task(input).await;
        doubled + 5
    })
}
// README-END

struct ExpensiveStruct {
    id: String,
    records: Vec<String>,
}

// Builds a large value and returns it by move: the records are not copied.
fn move_output_task() -> Task<ExpensiveStruct> {
    Task::new(async {
        let mut data = ExpensiveStruct {
            id: String::new(),
            records: Vec::new(),
        };
        data.id = "12345678-1234-5678-9012-123456781234".to_string();
        for i in 10_000..100_000 {
            data.records.push(i.to_string());
        }
        data
    })
}

// A Box can also carry a larger object out.
fn unique_ptr_task() -> Task<Box<u64>> {
    Task::new(async { Box::new(42) })
}

fn main() {
    let output = coro::sync_wait(double_and_add_5_task(2));
    println!("Task1 output = {output}");

    let data = coro::sync_wait(move_output_task());
    println!("{} has {} records.", data.id, data.records.len());

    let answer_to_everything = coro::sync_wait(unique_ptr_task());
    println!("Answer to everything = {answer_to_everything}");
}
