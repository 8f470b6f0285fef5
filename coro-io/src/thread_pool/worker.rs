//! The worker threads: their loop, where they look for work, how they park.

use super::*;

fn call_callback(cb: Option<&ThreadCallback>, index: usize) {
    if let Some(cb) = cb {
        let _ = catch_unwind(AssertUnwindSafe(|| cb(index)));
    }
}

pub(super) fn worker_main(shared: Arc<Shared>, index: usize, queue: Worker<Runnable>) {
    let _ = shared.workers[index].thread.set(thread::current());
    if let Some(w) = coro_core::WaitState::current() {
        let _ = shared.workers[index].wait.set(w);
    }
    LOCAL.with(|l| {
        *l.borrow_mut() = Some(Local {
            pool_id: shared.id,
            index,
            shared: shared.clone(),
            queue,
            lifo: Cell::new(None),
            blocked: Cell::new(false),
        });
    });
    coro_core::set_block_hook(Some(before_block));
    coro_core::set_unblock_hook(Some(after_block));
    call_callback(shared.on_thread_start.as_ref(), index);

    LOCAL.with(|l| {
        let l = l.borrow();
        let local = l.as_ref().expect("set above");
        run_worker(&shared, local);
    });

    // Take the local state out before dropping it: dropping runnables may
    // wake tasks, which looks at the thread-local.
    coro_core::set_block_hook(None);
    coro_core::set_unblock_hook(None);
    let local = LOCAL.with(|l| l.borrow_mut().take());
    drop(local);
    call_callback(shared.on_thread_stop.as_ref(), index);
    if shared.live.fetch_sub(1, Ordering::SeqCst) == 1 {
        shared.terminate();
    }
}

/// `sync_wait` is about to block this worker (a task waits for something
/// with it): hand its private work on ([`hand_off_next`]), and count it
/// blocked (see `idle::stuck`). Shutting down, it may be the last
/// worker to stop running: then the suspended tasks are cancelled.
fn before_block() {
    hand_off_next();
    let _ = LOCAL.try_with(|l| {
        let Ok(l) = l.try_borrow() else { return };
        if let Some(l) = l.as_ref() {
            if !l.blocked.replace(true) {
                let me = &l.shared.workers[l.index];
                me.blocks.fetch_add(1, Ordering::SeqCst);
                me.blocked.store(true, Ordering::SeqCst);
                l.shared.blocked.fetch_add(1, Ordering::SeqCst);
            }
            l.shared.cancel_suspended_if_stuck();
        }
    });
}

/// The park of `sync_wait` ended: this worker runs again.
fn after_block() {
    let _ = LOCAL.try_with(|l| {
        let Ok(l) = l.try_borrow() else { return };
        if let Some(l) = l.as_ref() {
            if l.blocked.replace(false) {
                l.shared.workers[l.index]
                    .blocked
                    .store(false, Ordering::SeqCst);
                l.shared.blocked.fetch_sub(1, Ordering::SeqCst);
            }
        }
    });
}

/// The task in the LIFO slot, which only this worker would run (often the
/// very child a task blocking its worker waits for), goes to the
/// stealable queue and a free worker is woken to take it.
fn hand_off_next() {
    // `try_with`: not while the thread's locals are being torn down.
    let _ = LOCAL.try_with(|l| {
        // Shared borrow: the running task's own `with_local` may hold one.
        let Ok(l) = l.try_borrow() else { return };
        if let Some(l) = l.as_ref() {
            if let Some(r) = l.lifo.take() {
                l.queue.push(r);
            }
            // Also tasks a batch steal left in the local queue: while this
            // worker blocks, only another one can run them.
            if !l.queue.is_empty() {
                l.shared.notify();
            }
        }
    });
}

struct WorkerRun<'a> {
    shared: &'a Shared,
    local: &'a Local,
    searching: bool,
    tick: u32,
    lifo_streak: u32,
    rng: u32,
}

fn run_worker(shared: &Shared, local: &Local) {
    let mut w = WorkerRun {
        shared,
        local,
        searching: false,
        tick: 0,
        lifo_streak: 0,
        rng: (local.index as u32).wrapping_mul(0x9E37_79B9) | 1,
    };
    loop {
        match w.find_task() {
            Some(r) => {
                if w.searching {
                    w.stop_searching();
                }
                // The task wrapper catches panics of `poll`; this guard covers
                // a panic in a future's destructor, so the worker survives.
                // Cancelling (see `Shared::cancel_suspended_if_stuck`):
                // dropped, not run.
                if shared.cancelling.load(Ordering::Relaxed) {
                    let _ = catch_unwind(AssertUnwindSafe(|| drop(r)));
                } else {
                    let _ = catch_unwind(AssertUnwindSafe(|| r.run()));
                }
            }
            None => {
                if !w.park() {
                    return;
                }
            }
        }
    }
}

impl WorkerRun<'_> {
    fn find_task(&mut self) -> Option<Runnable> {
        self.tick = self.tick.wrapping_add(1);
        if self.tick % GLOBAL_QUEUE_INTERVAL == 0 {
            if let Some(r) = self.steal_global() {
                return Some(r);
            }
        }
        if let Some(r) = self.local.lifo.take() {
            if self.lifo_streak < MAX_LIFO_STREAK {
                self.lifo_streak += 1;
                return Some(r);
            }
            self.local.queue.push(r);
        }
        self.lifo_streak = 0;
        if let Some(r) = self.local.queue.pop() {
            return Some(r);
        }
        if let Some(r) = self.steal_global() {
            return Some(r);
        }
        self.steal_others()
    }

    fn steal_global(&self) -> Option<Runnable> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.local.queue) {
                Steal::Success(r) => {
                    // The batch was out of the injector before it showed in
                    // our queue: a searcher that looked in between may have
                    // gone to sleep past it. A searching worker notifies
                    // when it stops searching; one that was not must here.
                    if !self.searching && !self.local.queue.is_empty() {
                        self.shared.notify();
                    }
                    return Some(r);
                }
                Steal::Empty => return None,
                Steal::Retry => {}
            }
        }
    }

    fn steal_others(&mut self) -> Option<Runnable> {
        let n = self.shared.workers.len();
        if n == 1 {
            return None;
        }
        if !self.searching {
            self.searching = true;
            self.shared.idle.start_searching();
        }
        // xorshift: a different starting victim each time.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        let start = self.rng as usize % n;
        for k in 0..n {
            let i = (start + k) % n;
            if i == self.local.index {
                continue;
            }
            loop {
                match self.shared.workers[i]
                    .stealer
                    .steal_batch_and_pop(&self.local.queue)
                {
                    Steal::Success(r) => return Some(r),
                    Steal::Empty => break,
                    Steal::Retry => {}
                }
            }
        }
        None
    }

    fn stop_searching(&mut self) {
        self.searching = false;
        if self.shared.idle.stop_searching() {
            // We were the last searcher and found work: there may be more, so
            // let one sleeper look (it parks again if there is none).
            self.shared.notify();
        }
    }

    /// Park until notified (see [`idle::park`]). Returns false when the
    /// worker must exit.
    fn park(&mut self) -> bool {
        idle::park(self.shared, self.local.index, &mut self.searching)
    }
}
