//! libcoro's `thread_pool` example: ten CPU-bound child tasks offloaded onto a
//! four-worker pool, each yielding once half-way, their results summed.
//!
//! Run with `cargo run --example thread_pool`. The order of the lines varies
//! with the threads; the result is about 5,000,000 (10 × 1,000,000 coin flips).

use std::sync::Arc;

use coro::io::thread_pool::{ThreadPool, ThreadPoolOptions};

/// A tiny xorshift generator: the example needs coin flips, not a crate.
struct XorShift(u64);

impl XorShift {
    fn seeded(child: u64) -> Self {
        // Seed from the clock and the child index, like std::random_device.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        XorShift((nanos ^ child.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn coin(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 >> 63
    }
}

// README-BEGIN: the code README shows (tests/readme.rs checks it)
async fn offload_task(tp: ThreadPool, child_idx: u64) -> u64 {
    // Continue on the pool (this task was spawned there, so this is also the
    // first point where another worker may pick it up).
    tp.schedule().await;

    // Mimic some expensive work that belongs on a background thread...
    let mut rng = XorShift::seeded(child_idx);
    let mut calculation = 0;
    for i in 0..1_000_000 {
        calculation += rng.coin();

        // Be nice and yield so other tasks on the pool get some CPU time. Never
        // block a worker with std::thread::sleep inside a task.
        if i == 500_000 {
            println!("Task {child_idx} is yielding()");
            tp.yield_now().await;
        }
    }
    calculation
}

fn main() {
    let tp = ThreadPool::new(ThreadPoolOptions {
        // By default a pool has one worker per available core; this one has 4.
        thread_count: 4,
        // Called on each worker, with its index, when it starts and stops.
        on_thread_start: Some(Arc::new(|worker_idx| {
            println!("thread pool worker {worker_idx} is starting up.");
        })),
        on_thread_stop: Some(Arc::new(|worker_idx| {
            println!("thread pool worker {worker_idx} is shutting down.");
        })),
        ..Default::default()
    });

    let primary_task = async {
        let num_children = 10;
        let children: Vec<_> = (0..num_children)
            .map(|i| tp.spawn(offload_task(tp.clone(), i)))
            .collect();

        // Wait for the workers to process all child tasks, then sum up.
        let results = coro::when_all(children).await;
        results
            .into_iter()
            .map(|r| r.expect("child task panicked"))
            .sum::<u64>()
    };

    let result = coro::sync_wait(primary_task);
    println!("calculated thread pool result = {result}");
    // Dropping the last handle shuts the pool down and joins its workers.
    drop(tp);
}
// README-END
