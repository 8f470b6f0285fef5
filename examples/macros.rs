//! `#[coro::main]`: build an `IoScheduler` from the attribute's arguments
//! and run `async fn main` on it (`#[coro::test]` does the same for tests).
//!
//! Expected output:
//! ```text
//! answer = 42
//! ```

use std::time::Duration;

use coro::io::IoScheduler;

// Two pool workers; the driver is chosen at run time (io_uring, else epoll).
#[coro::main(threads = 2)]
async fn main() -> std::io::Result<()> {
    let sched = IoScheduler::current().expect("main runs on the scheduler");
    let timer = sched.clone();
    let (a, b) = coro::when_all!(sched.spawn(async { 20 }), async move {
        timer.sleep(Duration::from_millis(10)).await;
        22
    })
    .await;
    println!("answer = {}", a? + b);
    Ok(())
}
