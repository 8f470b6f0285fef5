//! Stress on a 2-thread tokio runtime: exact counts after heavy contention.
#![cfg(not(loom))]
#![allow(missing_docs)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::yield_now;
use coro_sync::{Mutex, Queue, RingBuffer, Semaphore, SharedMutex};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn mutex_64_tasks_100k_rounds() {
    const TASKS: usize = 64;
    const TOTAL: usize = 100_000;
    rt().block_on(async {
        let m = Arc::new(Mutex::new(0usize));
        let mut hs = Vec::new();
        for i in 0..TASKS {
            let m = m.clone();
            let rounds = TOTAL / TASKS + usize::from(i < TOTAL % TASKS);
            hs.push(tokio::spawn(async move {
                for r in 0..rounds {
                    let mut g = if r % 2 == 0 {
                        m.lock().await
                    } else {
                        loop {
                            if let Some(g) = m.try_lock() {
                                break g;
                            }
                            yield_now().await;
                        }
                    };
                    let v = *g;
                    if r % 16 == 0 {
                        // Hold the lock across a suspension now and then.
                        yield_now().await;
                    }
                    *g = v + 1;
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        assert_eq!(*m.lock().await, TOTAL);
    });
}

#[test]
fn mutex_lock_arc_across_spawned_tasks() {
    rt().block_on(async {
        let m = Arc::new(Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        for i in 0..32 {
            let m = m.clone();
            hs.push(tokio::spawn(async move {
                let mut g = m.lock_arc().await;
                yield_now().await;
                g.push(i);
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        let mut v = m.lock().await.clone();
        v.sort();
        assert_eq!(v, (0..32).collect::<Vec<_>>());
    });
}

#[test]
fn shared_mutex_readers_and_writers() {
    const TASKS: usize = 64;
    const ROUNDS: usize = 500;
    rt().block_on(async {
        // Writers keep both halves equal; a reader seeing them differ saw a torn write.
        let m = Arc::new(SharedMutex::new((0usize, 0usize)));
        let writes = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::new();
        for i in 0..TASKS {
            let (m, writes) = (m.clone(), writes.clone());
            hs.push(tokio::spawn(async move {
                for r in 0..ROUNDS {
                    if (i + r) % 4 == 0 {
                        let mut g = m.write().await;
                        g.0 += 1;
                        yield_now().await;
                        g.1 += 1;
                        writes.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let g = m.read().await;
                        assert_eq!(g.0, g.1, "reader saw a writer's half-done update");
                        if r % 8 == 0 {
                            yield_now().await;
                        }
                    }
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        let g = m.read().await;
        assert_eq!(g.0, writes.load(Ordering::Relaxed));
        assert_eq!(g.0, TASKS * ROUNDS / 4);
    });
}

#[test]
fn ring_buffer_mpmc_4x4_every_item_once() {
    const PER_PRODUCER: usize = 20_000;
    rt().block_on(async {
        let rb = Arc::new(RingBuffer::<usize, 64>::new());
        let mut producers = Vec::new();
        for p in 0..4 {
            let rb = rb.clone();
            producers.push(tokio::spawn(async move {
                for i in 0..PER_PRODUCER {
                    rb.push(p * PER_PRODUCER + i).await.unwrap();
                }
            }));
        }
        let mut consumers = Vec::new();
        for _ in 0..4 {
            let rb = rb.clone();
            consumers.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut last = [None::<usize>; 4];
                while let Ok(v) = rb.pop().await {
                    // Per producer, one consumer sees increasing values.
                    let p = v / PER_PRODUCER;
                    assert!(last[p].is_none_or(|l| l < v), "reordered within a producer");
                    last[p] = Some(v);
                    seen.push(v);
                }
                seen
            }));
        }
        for p in producers {
            p.await.unwrap();
        }
        rb.close();
        let mut all = HashSet::new();
        let mut n = 0;
        for c in consumers {
            for v in c.await.unwrap() {
                assert!(all.insert(v), "item {v} seen twice");
                n += 1;
            }
        }
        assert_eq!(n, 4 * PER_PRODUCER);
        assert_eq!(all.len(), 4 * PER_PRODUCER);
    });
}

#[test]
fn queue_mpmc_every_item_once() {
    const PER_PRODUCER: usize = 20_000;
    rt().block_on(async {
        let q = Arc::new(Queue::new());
        let mut consumers = Vec::new();
        for _ in 0..4 {
            let q = q.clone();
            consumers.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                while let Ok(v) = q.pop().await {
                    seen.push(v);
                }
                seen
            }));
        }
        let mut producers = Vec::new();
        for p in 0..4 {
            let q = q.clone();
            producers.push(tokio::spawn(async move {
                for i in 0..PER_PRODUCER {
                    q.push(p * PER_PRODUCER + i).unwrap();
                    if i % 64 == 0 {
                        yield_now().await;
                    }
                }
            }));
        }
        for p in producers {
            p.await.unwrap();
        }
        q.close();
        let mut all = HashSet::new();
        for c in consumers {
            for v in c.await.unwrap() {
                assert!(all.insert(v));
            }
        }
        assert_eq!(all.len(), 4 * PER_PRODUCER);
    });
}

#[test]
fn semaphore_never_over_committed() {
    const PERMITS: usize = 4;
    rt().block_on(async {
        let s = Arc::new(Semaphore::new(PERMITS));
        let in_use = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::new();
        for i in 0..64usize {
            let (s, in_use) = (s.clone(), in_use.clone());
            hs.push(tokio::spawn(async move {
                for r in 0..200 {
                    let k = 1 + (i + r) % PERMITS;
                    let p = s.acquire_many(k).await.unwrap();
                    let now = in_use.fetch_add(k, Ordering::SeqCst) + k;
                    assert!(now <= PERMITS, "{now} permits in use");
                    yield_now().await;
                    in_use.fetch_sub(k, Ordering::SeqCst);
                    drop(p);
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        assert_eq!(s.available_permits(), PERMITS);
    });
}
