//! Cancellation under real concurrency: tasks on a 2-thread tokio runtime
//! race each wait against a random number of yields (seeded) and drop the
//! losing wait. Afterwards every permit, item and lock is accounted for.
#![cfg(not(loom))]
#![allow(missing_docs)]

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Rng, yield_now};
use coro_sync::{Mutex, RingBuffer, Semaphore, SharedMutex};
use futures::future::{Either, select};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

async fn yields(n: u64) {
    for _ in 0..n {
        yield_now().await;
    }
}

/// `Some(output)` if `fut` finished within `n` yields, else `None` (dropped).
async fn within<F: Future>(fut: F, n: u64) -> Option<F::Output> {
    match select(pin!(fut), pin!(yields(n))).await {
        Either::Left((v, _)) => Some(v),
        Either::Right(((), _)) => None,
    }
}

#[test]
fn semaphore_permits_survive_cancelled_acquires() {
    const PERMITS: usize = 5;
    rt().block_on(async {
        let s = Arc::new(Semaphore::new(PERMITS));
        let (got, cancelled) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut hs = Vec::new();
        for t in 0..32u64 {
            let (s, got, cancelled) = (s.clone(), got.clone(), cancelled.clone());
            hs.push(tokio::spawn(async move {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
                for _ in 0..300 {
                    let k = 1 + rng.below(3) as usize;
                    match within(s.acquire_many(k), rng.below(4)).await {
                        Some(p) => {
                            got.fetch_add(1, Ordering::Relaxed);
                            yields(rng.below(2)).await;
                            drop(p.unwrap());
                        }
                        None => {
                            cancelled.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        assert!(
            cancelled.load(Ordering::Relaxed) > 0,
            "no acquire was ever cancelled"
        );
        assert!(got.load(Ordering::Relaxed) > 0);
        assert_eq!(s.available_permits(), PERMITS);
        assert!(
            s.try_acquire_many(PERMITS).is_ok(),
            "permits or the priority slot leaked"
        );
    });
}

#[test]
fn mutex_survives_cancelled_locks() {
    rt().block_on(async {
        let m = Arc::new(Mutex::new(0usize));
        let done = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::new();
        for t in 0..32u64 {
            let (m, done) = (m.clone(), done.clone());
            hs.push(tokio::spawn(async move {
                let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (t + 1));
                for _ in 0..500 {
                    if let Some(mut g) = within(m.lock(), rng.below(3)).await {
                        *g += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                        yields(rng.below(2)).await;
                    }
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        let g = m.try_lock().expect("mutex left locked or reserved");
        assert_eq!(*g, done.load(Ordering::Relaxed));
    });
}

#[test]
fn shared_mutex_survives_cancelled_writers() {
    rt().block_on(async {
        let m = Arc::new(SharedMutex::new(0usize));
        let writes = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::new();
        for t in 0..16u64 {
            let (m, writes) = (m.clone(), writes.clone());
            hs.push(tokio::spawn(async move {
                let mut rng = Rng(0xA076_1D64_78BD_642F ^ (t + 1));
                for _ in 0..300 {
                    if rng.below(3) == 0 {
                        if let Some(mut g) = within(m.write(), rng.below(3)).await {
                            *g += 1;
                            writes.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if let Some(g) = within(m.read(), rng.below(3)).await {
                        yields(rng.below(2)).await;
                        drop(g);
                    }
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        assert_eq!(
            *m.try_write().expect("lock left held"),
            writes.load(Ordering::Relaxed)
        );
    });
}

#[test]
fn ring_buffer_items_survive_cancelled_push_and_pop() {
    rt().block_on(async {
        let rb = Arc::new(RingBuffer::<u64, 8>::new());
        let mut producers = Vec::new();
        for p in 0..4u64 {
            let rb = rb.clone();
            producers.push(tokio::spawn(async move {
                let mut rng = Rng(0xE703_7ED1_A0B4_28DB ^ (p + 1));
                let mut pushed = Vec::new();
                for i in 0..2_000 {
                    let v = p * 1_000_000 + i;
                    if within(rb.push(v), rng.below(3)).await.is_some() {
                        pushed.push(v);
                    }
                }
                pushed
            }));
        }
        let mut consumers = Vec::new();
        for c in 0..4u64 {
            let rb = rb.clone();
            consumers.push(tokio::spawn(async move {
                let mut rng = Rng(0x8EBC_6AF0_9C88_C6E3 ^ (c + 1));
                let mut popped = Vec::new();
                loop {
                    match within(rb.pop(), rng.below(4)).await {
                        Some(Ok(v)) => popped.push(v),
                        Some(Err(_closed)) => break popped,
                        None => {}
                    }
                }
            }));
        }
        let mut pushed = Vec::new();
        for p in producers {
            pushed.extend(p.await.unwrap());
        }
        rb.close();
        let mut popped = Vec::new();
        for c in consumers {
            popped.extend(c.await.unwrap());
        }
        pushed.sort_unstable();
        popped.sort_unstable();
        assert_eq!(pushed, popped, "items lost or duplicated");
    });
}
