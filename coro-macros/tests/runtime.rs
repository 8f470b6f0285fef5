//! The macros at run time: which scheduler the body gets, return values,
//! panics, attributes passed through, and the scheduler shut down after.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use coro::io::{DriverKind, IoScheduler};

fn current() -> IoScheduler {
    IoScheduler::current().expect("the body runs on the macro's scheduler")
}

#[coro::test(driver = "epoll")]
async fn epoll_driver() {
    assert_eq!(current().driver_kind(), DriverKind::Epoll);
}

#[coro::test(driver = "uring", entries = 64)]
async fn uring_driver() {
    assert_eq!(current().driver_kind(), DriverKind::IoUring);
}

#[coro::test]
async fn default_is_auto() {
    // `Auto` resolves to a real driver (CORO_DRIVER may pick which).
    assert_ne!(current().driver_kind(), DriverKind::Auto);
}

// The body's own inner attributes stay in the body.
#[coro::test]
async fn inner_attributes_stay_in_the_body() {
    #![allow(unused_variables)]
    let unused = 1;
}

// An expectation is the body's: met there, not copied where it goes unmet
// (the module, each driver's test), which `-D warnings` would refuse.
#[coro::test(both_drivers)]
#[expect(unused_variables)]
async fn an_expectation_belongs_to_the_body(_kind: DriverKind) {
    let unused = 1;
}

#[coro::test(both_drivers)]
async fn both(kind: DriverKind) {
    assert_eq!(current().driver_kind(), kind);
    current().sleep(Duration::from_millis(1)).await;
}

// The return type is written as in this module (`io` is imported here).
#[coro::test(both_drivers)]
async fn both_return_results() -> io::Result<()> {
    let sched = current();
    sched
        .timeout(Duration::from_secs(5), sched.yield_now())
        .await?;
    Ok(())
}

// Ask the test harness itself which tests this binary holds.
#[test]
fn both_drivers_makes_one_test_per_driver() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--list", "--format", "terse"])
        .output()
        .unwrap();
    let list = String::from_utf8(out.stdout).unwrap();
    let mut both: Vec<&str> = list.lines().filter(|l| l.starts_with("both::")).collect();
    both.sort_unstable();
    assert_eq!(both, ["both::epoll: test", "both::uring: test"], "{list}");
}

fn on_pool_worker() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with("coro-pool-"))
}

#[coro::test(threads = 3)]
async fn threads_run_the_body_on_a_pool() {
    // On a pool worker, not on the event loop ("coro-io").
    assert!(on_pool_worker(), "{:?}", std::thread::current().name());
    let h = current().spawn(async { on_pool_worker() });
    assert!(h.await.unwrap());
}

#[coro::test(inline)]
async fn inline_runs_on_the_event_loop() {
    // The test's own thread drives the scheduler and runs the body; tasks
    // the body spawns run there too (no "coro-io" loop thread).
    let me = std::thread::current().id();
    assert_eq!(
        std::thread::current().name(),
        Some("inline_runs_on_the_event_loop")
    );
    let h = current().spawn(async { std::thread::current().id() });
    assert_eq!(h.await.unwrap(), me);
}

#[coro::test]
async fn returns_a_result() -> Result<(), std::num::ParseIntError> {
    let n: u32 = "42".parse()?;
    assert_eq!(n, 42);
    Ok(())
}

#[coro::test]
#[should_panic(expected = "boom from the body")]
async fn panics_reach_the_test() {
    current().yield_now().await;
    panic!("boom from the body");
}

/// A task that shuts the scheduler down while the body runs cancels the
/// body: the panic says so and what to do instead (it said only
/// "cancelled").
#[coro::test(threads = 2)]
#[should_panic(expected = "a shutdown() of its scheduler before the body returned")]
async fn a_shutdown_before_the_body_ends_says_so() {
    let s = current();
    let s2 = s.clone();
    s.spawn(async move { s2.shutdown() }).detach();
    std::future::pending::<()>().await
}

/// The same on the default inline scheduler (the calling thread drives).
#[coro::test]
#[should_panic(expected = "a shutdown() of its scheduler before the body returned")]
async fn a_shutdown_before_the_inline_body_ends_says_so() {
    let s = current();
    let s2 = s.clone();
    s.spawn(async move { s2.shutdown() }).detach();
    std::future::pending::<()>().await
}

#[coro::test(both_drivers)]
#[should_panic(expected = "on both")]
async fn panics_on_both_drivers() {
    panic!("on both");
}

#[coro::test]
#[ignore = "checks that #[ignore] is passed through; never runs"]
async fn ignored() {
    panic!("an ignored test ran");
}

#[coro::test(start_paused)]
async fn paused_clock_moves_only_by_hand() {
    let sched = current();
    let before = sched.now();
    let s = sched.clone();
    let sleeper = sched.spawn(async move { s.sleep(Duration::from_secs(3600)).await });
    sched.yield_now().await;
    sched.advance(Duration::from_secs(3600));
    sleeper.await.unwrap();
    assert_eq!(sched.now() - before, Duration::from_secs(3600));
}

// `#[coro::main]` does not care about the function's name, so its expansion
// can be called from a test.
#[coro::main(threads = 2, driver = "epoll")]
async fn main_with_pool() -> std::io::Result<usize> {
    let sched = current();
    assert_eq!(sched.driver_kind(), DriverKind::Epoll);
    let hs: Vec<_> = (0..8).map(|i| sched.spawn(async move { i * 2 })).collect();
    let mut sum = 0;
    for h in hs {
        sum += h.await?;
    }
    Ok(sum)
}

#[test]
fn main_returns_the_body_value() {
    assert_eq!(main_with_pool().unwrap(), 56);
}

static LEFT_RUNNING: AtomicUsize = AtomicUsize::new(0);

struct Count;
impl Drop for Count {
    fn drop(&mut self) {
        LEFT_RUNNING.fetch_add(1, Ordering::SeqCst);
    }
}

#[coro::main]
async fn main_leaves_a_task() -> IoScheduler {
    let sched = current();
    let s = sched.clone();
    sched
        .spawn(async move {
            let _c = Count;
            s.sleep(Duration::MAX).await;
        })
        .detach();
    sched.yield_now().await;
    sched
}

#[test]
fn main_shuts_the_scheduler_down_after() {
    let sched = main_leaves_a_task();
    assert!(sched.is_shutdown());
    // The detached task was cancelled (dropped) by the shutdown.
    assert_eq!(LEFT_RUNNING.load(Ordering::SeqCst), 1);
    assert!(IoScheduler::current().is_none());
}

mod renamed {
    // `crate = ".."`: the facade under another path.
    use coro as my_coro;

    #[coro::test(crate = "my_coro", driver = "epoll")]
    async fn custom_crate_path() {
        assert_eq!(
            my_coro::io::IoScheduler::current().unwrap().driver_kind(),
            my_coro::io::DriverKind::Epoll
        );
    }
}

/// On the default inline scheduler the body runs on the calling thread,
/// which drives the scheduler: it may hold `!Send` values across awaits,
/// spawn `!Send` tasks, and still use timers, I/O and `Send` tasks.
#[coro::test(both_drivers)]
async fn inline_body_need_not_be_send() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let shared = Rc::new(RefCell::new(0));
    let sched = current();
    coro::sleep(Duration::from_millis(5)).await;
    *shared.borrow_mut() += 1;
    let rc = shared.clone();
    sched
        .spawn_local(async move {
            *rc.borrow_mut() += 1;
        })
        .await
        .unwrap();
    let sent = coro::spawn(async { 40 }).await.unwrap();
    // An I/O wait across the `Rc`: a pipe another thread writes later.
    let (r, w) = rustix::pipe::pipe().unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        rustix::io::write(&w, b"x").unwrap();
    });
    let st = sched
        .poll(&r, coro::io::PollOp::Read, Some(Duration::from_secs(5)))
        .await;
    assert_eq!(st, coro::io::PollStatus::Event);
    writer.join().unwrap();
    assert_eq!(sent + *shared.borrow(), 42);
}

#[coro::main]
async fn main_with_a_local_body() -> usize {
    let v = std::rc::Rc::new(vec![1usize, 2, 3]);
    coro::sleep(Duration::from_millis(1)).await;
    v.iter().sum()
}

#[test]
fn main_body_need_not_be_send() {
    assert_eq!(main_with_a_local_body(), 6);
    assert!(IoScheduler::current().is_none());
}
