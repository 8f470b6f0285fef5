//! The primitives inside other executors: `futures::executor` and tokio.

use std::time::Duration;

use coro_core::{StopSource, Task, try_when_all, when_all, when_any, yield_now};

#[test]
fn when_all_and_when_any_in_futures_executor() {
    let out = futures::executor::block_on(when_all((0..1000u32).map(|i| async move {
        yield_now().await;
        i
    })));
    assert_eq!(out, (0..1000).collect::<Vec<_>>());

    let (tx, rx) = futures::channel::oneshot::channel::<u8>();
    let t = std::thread::spawn(move || tx.send(5).unwrap());
    let won = futures::executor::block_on(when_any(vec![
        Task::new(std::future::pending::<u8>()),
        Task::new(async move { rx.await.unwrap() }),
    ]));
    assert_eq!(won, (1, 5));
    t.join().unwrap();
}

#[test]
fn when_all_of_spawned_tokio_tasks_on_a_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let out = rt.block_on(async {
        let handles = (0..200u64).map(|i| tokio::spawn(async move { i * 2 }));
        when_all(handles)
            .await
            .into_iter()
            .map(Result::unwrap)
            .sum::<u64>()
    });
    assert_eq!(out, (0..200u64).map(|i| i * 2).sum());
}

#[test]
fn when_all_itself_spawned_on_tokio_with_channel_wakes() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..100)
            .map(|_| tokio::sync::oneshot::channel::<usize>())
            .unzip();
        let joined = tokio::spawn(when_all(rxs));
        for (i, tx) in txs.into_iter().enumerate().rev() {
            tx.send(i).unwrap();
            tokio::task::yield_now().await;
        }
        let out: Vec<usize> = joined
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, (0..100).collect::<Vec<_>>());
    });
}

#[test]
fn when_any_with_tokio_timers_and_stop_token() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let source = StopSource::new();
        let token = source.token();
        let stopper = tokio::spawn(async move {
            tokio::task::yield_now().await;
            source.request_stop();
        });
        // The timer is an upper bound that must not be reached: the stop wins.
        let (index, ()) = coro_core::when_any!(
            async { tokio::time::sleep(Duration::from_secs(60)).await },
            token.stopped(),
        )
        .await;
        assert_eq!(index, 1);
        stopper.await.unwrap();
    });
}

#[test]
fn try_when_all_in_tokio() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let r: Result<Vec<u8>, &str> = rt.block_on(try_when_all(vec![
        Task::new(async { Ok(1) }),
        Task::new(async {
            tokio::task::yield_now().await;
            Err("second failed")
        }),
        Task::new(std::future::pending()),
    ]));
    assert_eq!(r, Err("second failed"));
}

/// Under tokio a child that spends tokio's budget on every poll (a loop of
/// ready channel operations) took it all each time `when_all!` polled it
/// first, so a sibling's ready `recv` always found the budget spent and
/// answered `Pending`: the sibling never finished, nor the busy child,
/// which waits for it. The children now take turns going first there, as
/// in `tokio::join!`; likewise the iterator `when_all`.
#[test]
fn when_all_lets_every_child_use_tokios_budget() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A child that is always ready, spending tokio's budget until `done`.
    async fn busy(done: &AtomicBool) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        while !done.load(Ordering::SeqCst) {
            tx.send(()).unwrap();
            rx.recv().await;
        }
    }
    rt.block_on(async {
        let done = AtomicBool::new(false);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        tx.send(7).unwrap();
        let quiet = async {
            let v = rx.recv().await;
            done.store(true, Ordering::SeqCst);
            v
        };
        let both = coro_core::when_all!(busy(&done), quiet);
        let ((), v) = tokio::time::timeout(std::time::Duration::from_secs(5), both)
            .await
            .expect("when_all! starved the child that waits on a ready channel");
        assert_eq!(v, Some(7));

        // The iterator form.
        let done = AtomicBool::new(false);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        tx.send(8).unwrap();
        let rx = std::sync::Mutex::new(Some(rx));
        let children = (0..2).map(|i| {
            let (done, rx) = (&done, &rx);
            Box::pin(async move {
                if i == 0 {
                    busy(done).await;
                    None
                } else {
                    let mut rx = rx.lock().unwrap().take().unwrap();
                    let v = rx.recv().await;
                    done.store(true, Ordering::SeqCst);
                    v
                }
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = Option<u32>> + '_>>
        });
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), when_all(children))
            .await
            .expect("when_all starved the child that waits on a ready channel");
        assert_eq!(got, vec![None, Some(8)]);
    });
}
