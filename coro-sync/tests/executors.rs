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
use coro_sync::{Barrier, Condvar, Event, Latch, Mutex, Queue, RingBuffer, Semaphore, SharedMutex};

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

async fn all(spawn: Spawn<'_>) {
    mutex_counter(spawn).await;
    shared_mutex_mix(spawn).await;
    ring_buffer_pipeline(spawn).await;
    semaphore_limit(spawn).await;
    gate_barrier_condvar_queue(spawn).await;
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
