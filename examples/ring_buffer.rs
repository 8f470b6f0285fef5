//! `coro::sync::RingBuffer`: one producer, four consumers, a 16-slot buffer on
//! a 4-thread pool (libcoro's `coro_ring_buffer` example).
//!
//! Expected output: every value 1 to 100 consumed exactly once (which consumer
//! gets which varies), then the stop messages:
//! ```text
//! (id=3, v=1), (id=2, v=2), (id=1, v=3), (id=0, v=4), (id=3, v=5), ...
//! producer is sending stop signal
//! consumer 0 shutting down, stop signal received
//! consumer 1 shutting down, stop signal received
//! consumer 2 shutting down, stop signal received
//! consumer 3 shutting down, stop signal received
//! ```
//! (the four consumer lines in any order).

use std::sync::Arc;

use coro::io::{ThreadPool, ThreadPoolOptions};
use coro::sync::{Mutex, RingBuffer};

const ITERATIONS: u64 = 100;
const CONSUMERS: usize = 4;

type Rb = RingBuffer<u64, 16>;

// README-BEGIN: the code README shows (tests/readme.rs checks it)
fn main() {
    let tp = ThreadPool::new(ThreadPoolOptions {
        thread_count: 4,
        ..Default::default()
    });
    let rb = Arc::new(Rb::new());
    // Only used to keep the printed lines whole.
    let m = Arc::new(Mutex::new(()));

    let make_producer_task = |tp: ThreadPool, rb: Arc<Rb>, m: Arc<Mutex<()>>| {
        tp.spawn(async move {
            for i in 1..=ITERATIONS {
                rb.push(i).await.expect("nobody closes the buffer but us");
            }
            {
                let _lock = m.lock().await;
                println!("\nproducer is sending stop signal");
            }
            // Consumers drain what is left, then their `pop` fails.
            rb.close();
        })
    };

    let make_consumer_task = |tp: ThreadPool, rb: Arc<Rb>, m: Arc<Mutex<()>>, id: usize| {
        tp.clone().spawn(async move {
            loop {
                let item = rb.pop().await;
                let _lock = m.lock().await; // just to keep stdout lines whole
                match item {
                    Ok(v) => print!("(id={id}, v={v}), "),
                    Err(_closed) => {
                        println!("consumer {id} shutting down, stop signal received");
                        break;
                    }
                }
                drop(_lock);
                // Pretend to do some work on the value.
                tp.yield_now().await;
            }
        })
    };

    let mut tasks: Vec<_> = (0..CONSUMERS)
        .map(|id| make_consumer_task(tp.clone(), rb.clone(), m.clone(), id))
        .collect();
    tasks.push(make_producer_task(tp.clone(), rb.clone(), m.clone()));
    for done in coro::sync_wait(coro::when_all(tasks)) {
        done.expect("a task panicked");
    }
}
// README-END
