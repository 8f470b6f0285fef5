//! `coro::sync::Queue`: five producers and two consumers share an unbounded
//! queue; a shutdown task closes it once every producer is done (libcoro's
//! `coro_queue` example).
//!
//! Expected output: 25 lines, each of `consumed 0` to `consumed 4` five times,
//! in a varying order, e.g.
//! ```text
//! consumed 0
//! consumed 1
//! consumed 0
//! consumed 2
//! ...
//! ```

use std::sync::Arc;

use coro::io::{ThreadPool, ThreadPoolOptions};
use coro::sync::{Latch, Mutex, Queue};

const ITERATIONS: u64 = 5;
const PRODUCERS: usize = 5;
const CONSUMERS: usize = 2;

// README-BEGIN: the code README shows (tests/readme.rs checks it)
fn main() {
    let tp = ThreadPool::new(ThreadPoolOptions::default());
    let q = Arc::new(Queue::<u64>::new());
    let producers_done = Arc::new(Latch::new(PRODUCERS));
    let m = Arc::new(Mutex::new(())); // only to keep the lines whole

    let make_producer_task = |tp: ThreadPool, q: Arc<Queue<u64>>, pd: Arc<Latch>| {
        tp.spawn(async move {
            for i in 0..ITERATIONS {
                q.push(i)
                    .expect("the queue closes after the producers are done");
            }
            pd.count_down(1); // tell the shutdown task this producer is done
        })
    };

    // Waits for every producer, then closes the queue: consumers drain what
    // is left, then `pop` fails.
    let make_shutdown_task = |tp: ThreadPool, q: Arc<Queue<u64>>, pd: Arc<Latch>| {
        tp.spawn(async move {
            pd.wait().await;
            q.close();
        })
    };

    let make_consumer_task = |tp: ThreadPool, q: Arc<Queue<u64>>, m: Arc<Mutex<()>>| {
        tp.spawn(async move {
            while let Ok(v) = q.pop().await {
                let _lock = m.lock().await;
                println!("consumed {v}");
            }
        })
    };

    let mut tasks = Vec::new();
    for _ in 0..PRODUCERS {
        tasks.push(make_producer_task(
            tp.clone(),
            q.clone(),
            producers_done.clone(),
        ));
    }
    for _ in 0..CONSUMERS {
        tasks.push(make_consumer_task(tp.clone(), q.clone(), m.clone()));
    }
    tasks.push(make_shutdown_task(
        tp.clone(),
        q.clone(),
        producers_done.clone(),
    ));
    for done in coro::sync_wait(coro::when_all(tasks)) {
        done.expect("a task panicked");
    }
}
// README-END
