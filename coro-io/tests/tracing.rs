//! With the `tracing` feature, tasks and ops emit spans and events.
#![cfg(feature = "tracing")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use coro_core::sync_wait;
use coro_io::{DriverKind, IoScheduler, IoSchedulerOptions, ThreadStrategy};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Counts events by message and spans by name.
#[derive(Default)]
struct Counter {
    spawned: AtomicUsize,
    complete: AtomicUsize,
    op_waits: AtomicUsize,
    op_complete: AtomicUsize,
    reports: AtomicUsize,
    task_spans: AtomicUsize,
    next: AtomicUsize,
}

struct Msg(String);
impl tracing::field::Visit for Msg {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        if f.name() == "message" {
            self.0 = format!("{v:?}");
        }
    }
}

#[derive(Clone)]
struct Shared(Arc<Counter>);

impl std::ops::Deref for Shared {
    type Target = Counter;
    fn deref(&self) -> &Counter {
        &self.0
    }
}

impl Subscriber for Shared {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, a: &Attributes<'_>) -> Id {
        if a.metadata().name() == "task" {
            self.task_spans.fetch_add(1, Ordering::SeqCst);
        }
        Id::from_u64(self.next.fetch_add(1, Ordering::SeqCst) as u64 + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut m = Msg(String::new());
        e.record(&mut m);
        let c = match m.0.as_str() {
            "task spawned" => &self.spawned,
            "task complete" => &self.complete,
            "op waits" => &self.op_waits,
            "op complete" => &self.op_complete,
            "coro-test: a background step failed" => &self.reports,
            _ => return,
        };
        c.fetch_add(1, Ordering::SeqCst);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn tasks_and_ops_are_traced() {
    let c = Arc::new(Counter::default());
    tracing::subscriber::with_default(Shared(c.clone()), || {
        // Manual: everything runs on this thread, under this subscriber.
        let s = IoScheduler::new(IoSchedulerOptions {
            driver: DriverKind::Epoll,
            thread_strategy: ThreadStrategy::Manual,
            ..Default::default()
        })
        .unwrap();
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK).unwrap();
        let d = s.driver().clone();
        let h = s.spawn(async move {
            use std::os::fd::AsRawFd;
            let (res, _) = coro_io::op::read(&d, r.as_raw_fd(), Vec::with_capacity(4)).await;
            res.unwrap()
        });
        s.process_events(Some(std::time::Duration::ZERO));
        rustix::io::write(&w, b"x").unwrap();
        while !h.is_finished() {
            s.process_events(Some(std::time::Duration::from_millis(100)));
        }
        assert_eq!(sync_wait(h).unwrap(), 1);
    });
    assert_eq!(c.spawned.load(Ordering::SeqCst), 1);
    assert_eq!(c.complete.load(Ordering::SeqCst), 1);
    assert_eq!(c.op_waits.load(Ordering::SeqCst), 1);
    assert_eq!(c.op_complete.load(Ordering::SeqCst), 1);
    assert!(c.task_spans.load(Ordering::SeqCst) >= 2); // one per poll
}

/// What the library cannot return as an error goes to the subscriber when
/// one listens (without one it goes to stderr: `coro-net`'s `emfile` test
/// reads it there with this feature on).
#[test]
fn reports_reach_a_listening_subscriber() {
    let c = Arc::new(Counter::default());
    tracing::subscriber::with_default(Shared(c.clone()), || {
        coro_io::report("coro-test", format_args!("a background step failed"));
    });
    assert_eq!(c.reports.load(Ordering::SeqCst), 1);
}
