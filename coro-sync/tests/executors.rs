//! The same behaviour scenarios under several executors: tokio (current-thread
//! and multi-thread), `futures::executor` (`LocalPool`, `ThreadPool`) and
//! `async-executor`. The primitives only ever see a `Waker`.
#![cfg(not(loom))]
#![allow(missing_docs)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::yield_now;
use coro_sync::{
    Barrier, Condvar, Event, Latch, Mutex, Queue, RingBuffer, Semaphore, SharedMutex, broadcast,
    mpsc, oneshot, watch,
};

type BoxFut = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How a scenario spawns detached tasks; it waits for them with a [`Latch`].
type Spawn<'a> = &'a dyn Fn(BoxFut);

async fn mutex_counter(spawn: Spawn<'_>) {
    let m = Arc::new(Mutex::new(0usize));
    let done = Arc::new(Latch::new(16));
    for _ in 0..16 {
        let (m, done) = (m.clone(), done.clone());
        spawn(Box::pin(async move {
            for _ in 0..200 {
                let mut g = m.lock().await;
                let v = *g;
                yield_now().await;
                *g = v + 1;
            }
            done.count_down(1);
        }));
    }
    done.wait().await;
    assert_eq!(*m.lock().await, 3200);
}

async fn shared_mutex_mix(spawn: Spawn<'_>) {
    let m = Arc::new(SharedMutex::new(0usize));
    let done = Arc::new(Latch::new(12));
    for i in 0..12 {
        let (m, done) = (m.clone(), done.clone());
        spawn(Box::pin(async move {
            for _ in 0..100 {
                if i % 3 == 0 {
                    *m.write().await += 1;
                } else {
                    let _r = m.read().await;
                    yield_now().await;
                }
            }
            done.count_down(1);
        }));
    }
    done.wait().await;
    assert_eq!(*m.read().await, 400);
}

async fn ring_buffer_pipeline(spawn: Spawn<'_>) {
    let rb = Arc::new(RingBuffer::<usize, 4>::new());
    let sum = Arc::new(AtomicUsize::new(0));
    let producers = Arc::new(Latch::new(2));
    let consumers = Arc::new(Latch::new(2));
    for p in 0..2 {
        let (rb, producers) = (rb.clone(), producers.clone());
        spawn(Box::pin(async move {
            for i in 1..=500 {
                rb.push(p * 1000 + i).await.unwrap();
            }
            producers.count_down(1);
        }));
    }
    for _ in 0..2 {
        let (rb, sum, consumers) = (rb.clone(), sum.clone(), consumers.clone());
        spawn(Box::pin(async move {
            while let Ok(v) = rb.pop().await {
                sum.fetch_add(v, Ordering::Relaxed);
            }
            consumers.count_down(1);
        }));
    }
    producers.wait().await;
    rb.close();
    consumers.wait().await;
    let expect: usize = (1..=500).sum::<usize>() * 2 + 1000 * 500;
    assert_eq!(sum.load(Ordering::Relaxed), expect);
}

async fn semaphore_limit(spawn: Spawn<'_>) {
    let s = Arc::new(Semaphore::new(3));
    let in_use = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Latch::new(16));
    for _ in 0..16 {
        let (s, in_use, done) = (s.clone(), in_use.clone(), done.clone());
        spawn(Box::pin(async move {
            for _ in 0..20 {
                let _p = s.acquire().await.unwrap();
                assert!(in_use.fetch_add(1, Ordering::SeqCst) < 3);
                yield_now().await;
                in_use.fetch_sub(1, Ordering::SeqCst);
            }
            done.count_down(1);
        }));
    }
    done.wait().await;
    assert_eq!(s.available_permits(), 3);
}

async fn gate_barrier_condvar_queue(spawn: Spawn<'_>) {
    let gate = Arc::new(Event::new(false));
    let barrier = Arc::new(Barrier::new(4));
    let leaders = Arc::new(AtomicUsize::new(0));
    let q = Arc::new(Queue::new());
    let state = Arc::new((Mutex::new(0usize), Condvar::new()));
    for i in 0..4 {
        let (gate, barrier, leaders, q, state) = (
            gate.clone(),
            barrier.clone(),
            leaders.clone(),
            q.clone(),
            state.clone(),
        );
        spawn(Box::pin(async move {
            gate.wait().await;
            if barrier.wait().await.is_leader() {
                leaders.fetch_add(1, Ordering::SeqCst);
            }
            q.push(i).unwrap();
            let (m, cv) = &*state;
            *m.lock().await += 1;
            cv.notify_all();
        }));
    }
    yield_now().await;
    gate.set();
    let (m, cv) = &*state;
    let g = cv.wait_while(m.lock().await, |n| *n < 4).await;
    assert_eq!(*g, 4);
    drop(g);
    q.close();
    let mut got = Vec::new();
    while let Ok(v) = q.pop().await {
        got.push(v);
    }
    got.sort();
    assert_eq!(got, [0, 1, 2, 3]);
    assert_eq!(leaders.load(Ordering::SeqCst), 1);
}

/// mpsc (bounded and unbounded): four producers, one consumer; every value
/// arrives once, each producer's in order, and the loop ends by itself when
/// the producers are gone.
async fn mpsc_pipeline(spawn: Spawn<'_>) {
    const PRODUCERS: usize = 4;
    const EACH: usize = 500;
    let (tx, mut rx) = mpsc::channel::<(usize, usize)>(4);
    let (utx, mut urx) = mpsc::unbounded_channel::<(usize, usize)>();
    for p in 0..PRODUCERS {
        let (tx, utx) = (tx.clone(), utx.clone());
        spawn(Box::pin(async move {
            for i in 0..EACH {
                if i % 2 == 0 {
                    tx.send((p, i)).await.unwrap();
                } else {
                    tx.reserve().await.unwrap().send((p, i));
                }
                utx.send((p, i)).unwrap();
                if i % 64 == 0 {
                    yield_now().await;
                }
            }
        }));
    }
    drop((tx, utx));
    let mut next = [0usize; PRODUCERS];
    while let Some((p, i)) = rx.recv().await {
        assert_eq!(i, next[p], "producer {p} out of order");
        next[p] += 1;
    }
    assert_eq!(next, [EACH; PRODUCERS]);
    let mut next = [0usize; PRODUCERS];
    let mut buf = Vec::new();
    while urx.recv_many(&mut buf, 32).await > 0 {
        for (p, i) in buf.drain(..) {
            assert_eq!(i, next[p]);
            next[p] += 1;
        }
    }
    assert_eq!(next, [EACH; PRODUCERS]);
}

/// oneshot replies, broadcast fan-out without lag, watch following a counter.
async fn oneshot_broadcast_watch(spawn: Spawn<'_>) {
    let mut replies = Vec::new();
    for i in 0..8u64 {
        let (tx, rx) = oneshot::channel();
        spawn(Box::pin(async move {
            yield_now().await;
            tx.send(i * i).unwrap();
        }));
        replies.push(rx);
    }
    let mut sum = 0;
    for rx in replies {
        sum += rx.await.unwrap();
    }
    assert_eq!(sum, (0..8u64).map(|i| i * i).sum::<u64>());

    const VALUES: u64 = 200;
    let (btx, brx) = broadcast::channel::<u64>(VALUES as usize);
    let mut totals = Vec::new();
    for _ in 0..3 {
        let mut rx = brx.resubscribe();
        let (done, total) = oneshot::channel();
        spawn(Box::pin(async move {
            let mut expect = 0;
            while let Ok(v) = rx.recv().await {
                assert_eq!(v, expect);
                expect += 1;
            }
            done.send(expect).unwrap();
        }));
        totals.push(total);
    }
    drop(brx);
    for v in 0..VALUES {
        assert_eq!(btx.send(v).unwrap(), 3);
        if v % 16 == 0 {
            yield_now().await;
        }
    }
    drop(btx);
    for t in totals {
        assert_eq!(t.await.unwrap(), VALUES);
    }

    let (wtx, wrx) = watch::channel(0u64);
    let mut finished = Vec::new();
    for _ in 0..3 {
        let mut rx = wrx.clone();
        let (done, seen) = oneshot::channel();
        spawn(Box::pin(async move {
            let mut last = 0;
            while rx.changed().await.is_ok() {
                let v = *rx.borrow_and_update();
                assert!(v >= last, "values go forward");
                last = v;
            }
            done.send(last).unwrap();
        }));
        finished.push(seen);
    }
    drop(wrx);
    for v in 1..=100 {
        wtx.send(v).unwrap();
        if v % 10 == 0 {
            yield_now().await;
        }
    }
    drop(wtx);
    for f in finished {
        assert_eq!(f.await.unwrap(), 100, "the last value is always seen");
    }
}

async fn all(spawn: Spawn<'_>) {
    mutex_counter(spawn).await;
    shared_mutex_mix(spawn).await;
    ring_buffer_pipeline(spawn).await;
    semaphore_limit(spawn).await;
    gate_barrier_condvar_queue(spawn).await;
    mpsc_pipeline(spawn).await;
    oneshot_broadcast_watch(spawn).await;
}

#[test]
fn tokio_current_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let spawn = move |f: BoxFut| drop(handle.spawn(f));
    rt.block_on(all(&spawn));
}

#[test]
fn tokio_multi_thread() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let spawn = move |f: BoxFut| drop(handle.spawn(f));
    rt.block_on(all(&spawn));
}

#[test]
fn futures_local_pool() {
    use futures::task::LocalSpawnExt;
    let mut pool = futures::executor::LocalPool::new();
    let spawner = pool.spawner();
    let spawn = move |f: BoxFut| spawner.spawn_local(f).unwrap();
    pool.run_until(all(&spawn));
}

#[test]
fn futures_thread_pool() {
    let pool = futures::executor::ThreadPool::builder()
        .pool_size(2)
        .create()
        .unwrap();
    let spawn = move |f: BoxFut| pool.spawn_ok(f);
    futures::executor::block_on(all(&spawn));
}

#[test]
fn async_executor() {
    let ex = Arc::new(async_executor::Executor::new());
    let ex2 = ex.clone();
    let spawn = move |f: BoxFut| ex2.spawn(f).detach();
    futures::executor::block_on(ex.run(all(&spawn)));
}
