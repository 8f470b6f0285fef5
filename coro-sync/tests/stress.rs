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

/// Runs `f` on its own thread and fails the test if it takes longer than
/// `secs` (a lost wake-up shows as a hang, this turns it into a failure).
fn bounded_in_time(secs: u64, f: impl FnOnce() + Send + 'static) {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        f();
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(()) => t.join().unwrap(),
        // The thread panicked: report its panic.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => t.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("did not finish within {secs} s (a lost wake-up?)")
        }
    }
}

/// 4 producers x 10k values through a small bounded channel (mixing `send`,
/// `try_send` and `reserve`) and through an unbounded one: each value is
/// received once, each producer's values in order, and the receive loop
/// ends on its own when the producers are done.
#[test]
fn mpsc_4_producers_10k_each_in_order() {
    const PRODUCERS: usize = 4;
    const EACH: usize = 10_000;
    bounded_in_time(60, || {
        rt().block_on(async {
            let (tx, mut rx) = coro_sync::mpsc::channel::<(usize, usize)>(8);
            let (utx, mut urx) = coro_sync::mpsc::unbounded_channel::<(usize, usize)>();
            for p in 0..PRODUCERS {
                let (tx, utx) = (tx.clone(), utx.clone());
                tokio::spawn(async move {
                    for i in 0..EACH {
                        match i % 3 {
                            0 => tx.send((p, i)).await.unwrap(),
                            1 => tx.reserve().await.unwrap().send((p, i)),
                            _ => {
                                let mut v = (p, i);
                                loop {
                                    match tx.try_send(v) {
                                        Ok(()) => break,
                                        Err(e) => {
                                            v = e.into_inner();
                                            yield_now().await;
                                        }
                                    }
                                }
                            }
                        }
                        utx.send((p, i)).unwrap();
                    }
                });
            }
            drop((tx, utx));
            let unbounded = tokio::spawn(async move {
                let mut next = [0usize; PRODUCERS];
                while let Some((p, i)) = urx.recv().await {
                    assert_eq!(i, next[p], "unbounded: producer {p} out of order");
                    next[p] += 1;
                }
                next
            });
            let mut next = [0usize; PRODUCERS];
            let mut buf = Vec::new();
            while rx.recv_many(&mut buf, 16).await > 0 {
                for (p, i) in buf.drain(..) {
                    assert_eq!(i, next[p], "bounded: producer {p} out of order");
                    next[p] += 1;
                }
            }
            assert_eq!(next, [EACH; PRODUCERS]);
            assert_eq!(unbounded.await.unwrap(), [EACH; PRODUCERS]);
        });
    });
}

/// Bounded senders cancelled at random points (a `send` or `reserve` raced
/// against a few yields and dropped when it loses): no slot leaks, every
/// value whose send completed arrives exactly once.
#[test]
fn mpsc_cancelled_sends_leak_no_slot() {
    use futures::future::{Either, select};
    use std::pin::pin;
    const PRODUCERS: u64 = 8;
    const EACH: u64 = 2_000;
    bounded_in_time(60, || {
        rt().block_on(async {
            let (tx, mut rx) = coro_sync::mpsc::channel::<u64>(2);
            let sent = Arc::new(AtomicUsize::new(0));
            for p in 0..PRODUCERS {
                let (tx, sent) = (tx.clone(), sent.clone());
                tokio::spawn(async move {
                    let mut rng = common::Rng(0x2545_F491_4F6C_DD1D ^ (p + 1));
                    for i in 0..EACH {
                        let v = p * EACH + i;
                        let patience = rng.below(3);
                        let yields = pin!(async {
                            for _ in 0..patience {
                                yield_now().await;
                            }
                        });
                        let done = if i % 2 == 0 {
                            match select(pin!(tx.send(v)), yields).await {
                                Either::Left((r, _)) => r.is_ok(),
                                Either::Right(_) => false,
                            }
                        } else {
                            match select(pin!(tx.reserve()), yields).await {
                                Either::Left((r, _)) => {
                                    r.unwrap().send(v);
                                    true
                                }
                                Either::Right(_) => false,
                            }
                        };
                        if done {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            drop(tx);
            let mut seen = HashSet::new();
            while let Some(v) = rx.recv().await {
                assert!(seen.insert(v), "{v} received twice");
            }
            assert_eq!(seen.len(), sent.load(Ordering::Relaxed));
            assert_eq!(rx.capacity(), rx.max_capacity(), "a slot leaked");
        });
    });
}

/// Broadcast on OS threads: for every receiver, values received plus values
/// reported lagged add up to exactly what was sent, each sender's in order.
#[test]
fn broadcast_received_plus_lagged_is_everything() {
    use coro_sync::broadcast::{self, error::RecvError};
    const VALUES: u64 = 20_000;
    bounded_in_time(60, || {
        let (tx, rx) = broadcast::channel::<(usize, u64)>(16);
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                let mut rx = rx.resubscribe();
                std::thread::spawn(move || {
                    futures::executor::block_on(async {
                        let (mut got, mut lagged) = (0u64, 0u64);
                        let mut last = [None; 2];
                        loop {
                            match rx.recv().await {
                                Ok((s, v)) => {
                                    assert!(last[s].is_none_or(|l| v > l), "out of order");
                                    last[s] = Some(v);
                                    got += 1;
                                }
                                Err(RecvError::Lagged(n)) => lagged += n,
                                Err(RecvError::Closed) => break,
                            }
                        }
                        (got, lagged)
                    })
                })
            })
            .collect();
        drop(rx);
        let senders: Vec<_> = (0..2)
            .map(|s| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for v in 0..VALUES / 2 {
                        tx.send((s, v)).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        for s in senders {
            s.join().unwrap();
        }
        for r in receivers {
            let (got, lagged) = r.join().unwrap();
            assert_eq!(got + lagged, VALUES, "got {got}, lagged {lagged}");
        }
    });
}

/// oneshot sends racing receiver drops and closes on OS threads: each value
/// is either handed back to the sender or delivered, never both or neither.
#[test]
fn oneshot_send_races_receiver_drop() {
    bounded_in_time(60, || {
        for i in 0..5_000u32 {
            let (tx, mut rx) = coro_sync::oneshot::channel::<u32>();
            let t = std::thread::spawn(move || tx.send(i));
            let received = if i % 2 == 0 {
                rx.close();
                rx.try_recv().ok()
            } else {
                futures::executor::block_on(rx).ok()
            };
            match t.join().unwrap() {
                Ok(()) => assert_eq!(received, Some(i)),
                Err(back) => {
                    assert_eq!(back, i);
                    assert_eq!(received, None);
                }
            }
        }
    });
}
