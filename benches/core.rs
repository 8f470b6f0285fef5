//! coro-core micro-benchmarks against `futures` and tokio, in the same run.
//!
//! `cargo bench --bench core` (see docs/BENCHMARKS.md for the short run used there).

// `criterion_group!` generates an undocumented pub fn.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn sync_wait_ready(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync_wait_ready");
    g.bench_function("coro::sync_wait", |b| {
        b.iter(|| coro::sync_wait(std::future::ready(black_box(1u64))))
    });
    g.bench_function("futures::executor::block_on", |b| {
        b.iter(|| futures::executor::block_on(std::future::ready(black_box(1u64))))
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    g.bench_function("tokio current_thread block_on", |b| {
        b.iter(|| rt.block_on(std::future::ready(black_box(1u64))))
    });
    g.finish();
}

/// Children that are ready at once, and children that yield once (pending,
/// woken, polled again: the wake-up path).
fn when_all(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for &n in &[1_000u64, 100_000] {
        let mut g = c.benchmark_group(format!("when_all_{n}"));
        g.throughput(criterion::Throughput::Elements(n));
        if n >= 100_000 {
            g.sample_size(10);
        }
        g.bench_with_input(BenchmarkId::new("coro::when_all", "ready"), &n, |b, &n| {
            b.iter(|| coro::sync_wait(coro::when_all((0..n).map(|i| async move { black_box(i) }))))
        });
        g.bench_with_input(
            BenchmarkId::new("futures::join_all", "ready"),
            &n,
            |b, &n| {
                b.iter(|| {
                    coro::sync_wait(futures::future::join_all(
                        (0..n).map(|i| async move { black_box(i) }),
                    ))
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("tokio::JoinSet", "ready"), &n, |b, &n| {
            b.iter(|| {
                rt.block_on(async {
                    let mut set = tokio::task::JoinSet::new();
                    for i in 0..n {
                        set.spawn(async move { black_box(i) });
                    }
                    set.join_all().await
                })
            })
        });
        g.bench_with_input(
            BenchmarkId::new("coro::when_all", "yield_once"),
            &n,
            |b, &n| {
                b.iter(|| {
                    coro::sync_wait(coro::when_all((0..n).map(|i| async move {
                        coro::yield_now().await;
                        black_box(i)
                    })))
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("futures::join_all", "yield_once"),
            &n,
            |b, &n| {
                b.iter(|| {
                    coro::sync_wait(futures::future::join_all((0..n).map(|i| async move {
                        coro::yield_now().await;
                        black_box(i)
                    })))
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("tokio::JoinSet", "yield_once"),
            &n,
            |b, &n| {
                b.iter(|| {
                    rt.block_on(async {
                        let mut set = tokio::task::JoinSet::new();
                        for i in 0..n {
                            set.spawn(async move {
                                tokio::task::yield_now().await;
                                black_box(i)
                            });
                        }
                        set.join_all().await
                    })
                })
            },
        );
        g.finish();
    }
}

/// `when_all!` of a fixed tuple against `tokio::join!` and `futures::join!`.
fn when_all_tuple(c: &mut Criterion) {
    let mut g = c.benchmark_group("when_all_tuple_4");
    g.bench_function("coro::when_all!", |b| {
        b.iter(|| {
            coro::sync_wait(coro::when_all!(
                async { black_box(1u8) },
                async { black_box(2u16) },
                async { black_box(3u32) },
                async { black_box(4u64) },
            ))
        })
    });
    g.bench_function("tokio::join!", |b| {
        b.iter(|| {
            coro::sync_wait(async {
                tokio::join!(
                    async { black_box(1u8) },
                    async { black_box(2u16) },
                    async { black_box(3u32) },
                    async { black_box(4u64) },
                )
            })
        })
    });
    g.bench_function("futures::join!", |b| {
        b.iter(|| {
            coro::sync_wait(async {
                futures::join!(
                    async { black_box(1u8) },
                    async { black_box(2u16) },
                    async { black_box(3u32) },
                    async { black_box(4u64) },
                )
            })
        })
    });
    g.finish();
}

fn generator(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let mut g = c.benchmark_group("generator_1M");
    g.throughput(criterion::Throughput::Elements(N));
    g.sample_size(10);
    g.bench_function("coro::Generator", |b| {
        b.iter(|| {
            let r#gen = coro::Generator::new(|y: coro::Yielder<u64>| async move {
                for i in 0..N {
                    y.yield_(black_box(i)).await;
                }
            });
            r#gen.fold(0u64, |acc, v| acc.wrapping_add(v))
        })
    });
    g.bench_function("plain iterator", |b| {
        b.iter(|| {
            (0..N)
                .map(black_box)
                .fold(0u64, |acc, v| acc.wrapping_add(v))
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = sync_wait_ready, when_all, when_all_tuple, generator
}
criterion_main!(benches);
