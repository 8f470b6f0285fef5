//! `Task` and `LocalTask`.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use coro_core::{LocalTask, Task, sync_wait};

fn double(x: u64) -> Task<u64> {
    Task::new(async move { x * 2 })
}

#[test]
fn tasks_compose_and_run_lazily() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let t = Task::new(async move {
        r.fetch_add(1, Ordering::SeqCst);
        double(2).await + 5
    });
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "nothing runs before the first poll"
    );
    assert_eq!(sync_wait(t), 9);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn dropping_an_unpolled_task_never_runs_it() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    drop(Task::new(async move {
        r.fetch_add(1, Ordering::SeqCst);
    }));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(Arc::strong_count(&runs), 1, "captures dropped");
}

#[test]
fn moves_large_values_out() {
    let t = Task::new(async {
        let records: Vec<String> = (10_000..100_000).map(|i: u32| i.to_string()).collect();
        ("12345678-1234-5678-9012-123456781234".to_string(), records)
    });
    let (id, records) = sync_wait(t);
    assert_eq!(id.len(), 36);
    assert_eq!(records.len(), 90_000);
    assert_eq!(
        sync_wait(Task::new(async { Box::new(42u64) })),
        Box::new(42)
    );
}

#[test]
fn task_is_send_and_runs_on_other_executors() {
    fn assert_send<T: Send>(_: &T) {}
    let t = double(21);
    assert_send(&t);
    assert_eq!(futures::executor::block_on(t), 42);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    assert_eq!(
        rt.block_on(async { tokio::spawn(double(4)).await.unwrap() }),
        8
    );
}

#[test]
fn local_task_holds_non_send_state() {
    let shared = Rc::new(std::cell::Cell::new(1));
    let s = shared.clone();
    let t = LocalTask::new(async move {
        s.set(s.get() + 1);
        s.get()
    });
    assert_eq!(sync_wait(t), 2);
    let from_task: LocalTask<u64> = double(3).into();
    assert_eq!(sync_wait(from_task), 6);
}

#[test]
fn debug_output_names_the_type() {
    assert!(format!("{:?}", double(1)).starts_with("Task"));
    assert!(format!("{:?}", LocalTask::new(async {})).starts_with("LocalTask"));
}
