//! How workers go to sleep and how new work wakes them: the pool's one
//! lock-free protocol, kept apart so that loom can check it
//! (`coro-io/tests/loom_pool.rs` compiles this file against loom's types).
//!
//! One word counts the workers that are *searching* (out of local work,
//! looking at the others' queues) and those *sleeping*; both change in one
//! atomic operation. A list of the sleepers sits under a lock, and each
//! worker has a token a waker leaves it.
//!
//! * A producer makes work visible, then [`notify`](Idle::notify)s: a fence,
//!   then one read of the word. If a worker is searching, it will find the
//!   work (or wake another when it stops searching); if not and one
//!   sleeps, the producer pops a sleeper under the lock, moves it from
//!   sleeping to searching and leaves it a token: one wake per burst, not
//!   one per task.
//! * A worker out of work registers as sleeping under the lock
//!   ([`sleep`](Idle::sleep)), fences, and looks at the queues once more.
//!   The two fences order "publish work, read the word" against "count
//!   myself sleeping, read the queues": at least one side sees the other.
//!   If its look finds work it leaves ([`cancel_sleep`](Idle::cancel_sleep));
//!   otherwise it parks until it takes a token.
//! * A worker that found work while searching stops searching; the last
//!   searcher to stop notifies once more, since a burst may hold more work
//!   than it took.

use super::sync::{AtomicBool, AtomicUsize, Mutex, Ordering, fence};

/// Bits of the word: the low half counts searching workers, the high half
/// sleeping ones.
const SEARCHING_ONE: usize = 1;
const SLEEPING_SHIFT: u32 = usize::BITS / 2;
const SLEEPING_ONE: usize = 1 << SLEEPING_SHIFT;
const SEARCHING_MASK: usize = SLEEPING_ONE - 1;

/// The sleep/search/notify state of a pool of `n` workers.
pub(crate) struct Idle {
    /// `(sleeping << SLEEPING_SHIFT) | searching`.
    state: AtomicUsize,
    /// Indices of the sleeping workers; the lock orders sleeping against
    /// waking.
    sleepers: Mutex<Vec<usize>>,
    /// Per worker: a waker moved it from sleeping to searching.
    tokens: Box<[AtomicBool]>,
}

impl Idle {
    pub(crate) fn new(n: usize) -> Idle {
        Idle {
            state: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::with_capacity(n)),
            tokens: (0..n).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    fn sleepers(&self) -> impl std::ops::DerefMut<Target = Vec<usize>> + '_ {
        self.sleepers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Work was just made visible: the worker to unpark, if one must wake
    /// (nobody searches and somebody sleeps).
    #[inline]
    pub(crate) fn notify(&self) -> Option<usize> {
        // Pairs with the fence in `sleep`: either the sleeper's look at the
        // queues sees the work, or we see it counted as sleeping.
        fence(Ordering::SeqCst);
        let s = self.state.load(Ordering::SeqCst);
        if s & SEARCHING_MASK == 0 && s >> SLEEPING_SHIFT > 0 {
            self.wake_one()
        } else {
            None
        }
    }

    #[cold]
    fn wake_one(&self) -> Option<usize> {
        let mut sleepers = self.sleepers();
        // Re-check under the lock: another notifier may have woken a
        // searcher meanwhile.
        if self.state.load(Ordering::SeqCst) & SEARCHING_MASK != 0 {
            return None;
        }
        let i = sleepers.pop()?;
        self.state
            .fetch_add(SEARCHING_ONE.wrapping_sub(SLEEPING_ONE), Ordering::SeqCst);
        drop(sleepers);
        self.tokens[i].store(true, Ordering::Release);
        Some(i)
    }

    /// A worker out of local work starts looking at the others' queues.
    pub(crate) fn start_searching(&self) {
        self.state.fetch_add(SEARCHING_ONE, Ordering::SeqCst);
    }

    /// A searching worker found work. `true`: it was the last searcher, and
    /// must [`notify`](Idle::notify) (there may be more work).
    pub(crate) fn stop_searching(&self) -> bool {
        let prev = self.state.fetch_sub(SEARCHING_ONE, Ordering::SeqCst);
        prev & SEARCHING_MASK == 1
    }

    /// Worker `index` (searching or not) goes to sleep. Afterwards it must
    /// look at the queues once more, then either
    /// [`cancel_sleep`](Idle::cancel_sleep) or park until
    /// [`take_token`](Idle::take_token) succeeds.
    pub(crate) fn sleep(&self, index: usize, searching: bool) {
        {
            let mut sleepers = self.sleepers();
            let delta = if searching {
                SLEEPING_ONE.wrapping_sub(SEARCHING_ONE)
            } else {
                SLEEPING_ONE
            };
            self.state.fetch_add(delta, Ordering::SeqCst);
            sleepers.push(index);
        }
        // Pairs with the fence in `notify`.
        fence(Ordering::SeqCst);
    }

    /// The look after [`sleep`](Idle::sleep) found a reason to stay up:
    /// leave the sleepers, counted as searching. `false`: a waker already
    /// took worker `index` off the list, and its token is on the way: the
    /// caller must wait for it ([`take_token`](Idle::take_token)).
    pub(crate) fn cancel_sleep(&self, index: usize) -> bool {
        let mut sleepers = self.sleepers();
        let Some(pos) = sleepers.iter().position(|&i| i == index) else {
            return false;
        };
        sleepers.swap_remove(pos);
        self.state
            .fetch_add(SEARCHING_ONE.wrapping_sub(SLEEPING_ONE), Ordering::SeqCst);
        true
    }

    /// Take the token a waker left worker `index` (it then counts as
    /// searching).
    pub(crate) fn take_token(&self, index: usize) -> bool {
        // A compare-exchange, not a swap: no write when there is no token
        // (and loom 0.7 models a swap that follows the thread's own swap
        // as reading that one, missing a newer store by the waker).
        self.tokens[index]
            .compare_exchange(true, false, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Shutdown: every sleeper moves to searching and gets its token.
    /// Returns them, to unpark.
    pub(crate) fn wake_all(&self) -> Vec<usize> {
        let mut sleepers = self.sleepers();
        let all = self.take_listed(&mut sleepers);
        drop(sleepers);
        self.leave_tokens(&all);
        all
    }

    /// Take every listed sleeper off the list and count them as
    /// searching, under the lock (the word and the list agree for whoever
    /// takes it next: `leave_all` decides from the word).
    fn take_listed(&self, sleepers: &mut Vec<usize>) -> Vec<usize> {
        let all = std::mem::take(sleepers);
        if !all.is_empty() {
            let delta = (all.len() * SEARCHING_ONE).wrapping_sub(all.len() * SLEEPING_ONE);
            self.state.fetch_add(delta, Ordering::SeqCst);
        }
        all
    }

    /// The tokens of workers just taken off the list.
    fn leave_tokens(&self, all: &[usize]) {
        for &i in all {
            self.tokens[i].store(true, Ordering::Release);
        }
    }

    /// Shutdown, once every live worker sleeps: mark `leaving` and wake
    /// them all to leave. Under the sleepers' lock, as `cancel_sleep` and
    /// `sleep` are, so that no worker is counted asleep here while it
    /// cancels its sleep to run late work: either its cancel comes first
    /// (then not everyone sleeps, and nobody leaves yet) or this does
    /// (then its cancel fails, it takes its token and sees `leaving`).
    /// `None`: someone is still up.
    pub(crate) fn leave_all(&self, live: usize, leaving: &AtomicBool) -> Option<Vec<usize>> {
        let mut sleepers = self.sleepers();
        if !leaving.load(Ordering::SeqCst) && self.sleeping() < live {
            return None;
        }
        leaving.store(true, Ordering::SeqCst);
        let all = self.take_listed(&mut sleepers);
        drop(sleepers);
        self.leave_tokens(&all);
        Some(all)
    }

    /// `f(sleeping)` under the sleepers' lock: meanwhile no worker counted
    /// asleep can cancel its sleep (to run work it saw), as in
    /// [`leave_all`](Idle::leave_all).
    pub(crate) fn with_sleepers_locked<R>(&self, f: impl FnOnce(usize) -> R) -> R {
        let _sleepers = self.sleepers();
        f(self.sleeping())
    }

    /// Workers counted as sleeping.
    pub(crate) fn sleeping(&self) -> usize {
        self.state.load(Ordering::SeqCst) >> SLEEPING_SHIFT
    }

    /// `(searching, sleeping, listed sleepers)`, for tests.
    #[allow(dead_code)] // tests
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let s = self.state.load(Ordering::SeqCst);
        (
            s & SEARCHING_MASK,
            s >> SLEEPING_SHIFT,
            self.sleepers().len(),
        )
    }
}

/// What a worker out of work needs of its pool to park: the pool's shared
/// state, or the loom model's, which runs this same [`park`].
pub(crate) trait Parking {
    /// The sleep/search protocol above.
    fn idle(&self) -> &Idle;
    /// Whether a queue that others can take from has work.
    fn has_visible_work(&self) -> bool;
    /// Whether `shutdown` began.
    fn shutting_down(&self) -> bool;
    /// Set once, when every worker may leave (see [`park`]).
    fn leaving(&self) -> &AtomicBool;
    /// Workers still in their loop.
    fn live(&self) -> usize;
    /// Shutting down, with this worker counted asleep: if every live
    /// worker is asleep or blocked waiting (a task in `sync_wait`, with no
    /// wake-up come: [`stuck`]), cancel the suspended tasks.
    fn cancel_suspended_if_stuck(&self);
    /// Wake worker `i` (its token is already set).
    fn unpark(&self, i: usize);
    /// Block the calling worker, `index`, until it takes its token.
    fn wait_for_token(&self, index: usize);
}

/// What [`stuck`] reads of a pool whose workers may wait in `sync_wait`
/// (the pool's, or the loom model's).
pub(crate) trait Waiting: Parking {
    /// Workers, indexed from 0.
    fn workers(&self) -> usize;
    /// Whether any worker may be blocked (`false` skips the rest).
    fn any_blocked(&self) -> bool;
    /// Times worker `i` blocked so far (raised before it is marked
    /// blocked).
    fn blocks(&self, i: usize) -> u64;
    /// Worker `i` is between the block and unblock hooks of a `sync_wait`.
    fn is_blocked(&self, i: usize) -> bool;
    /// Worker `i`'s wake-up came and it has not taken it (set by the
    /// wake, taken only after the unblock hook); `true` when unknown.
    fn is_woken(&self, i: usize) -> bool;
}

/// Whether the pool is stuck: shutting down, every live worker asleep
/// (in [`park`]) or waiting in `sync_wait` with no wake-up come, and no
/// work queued where a free worker would find it. Then nothing but a
/// wake-up from outside the pool could ever end those waits (what they
/// wait for is suspended, or waits for something that is: a timer, I/O,
/// a blocking job, a task), and a shutdown cancels suspended tasks.
///
/// It must not count a worker that runs, or one that a running one just
/// woke: a task it wakes next would be cancelled rather than run. So
/// each blocked worker is read before and after the sleepers are
/// counted: the times it blocked, its flag, its wake-up. Seen blocked
/// with no wake-up both times and the same number, it waited all along;
/// one woken shows woken, or unblocked, or blocked anew. The sleepers
/// are counted, and the queues looked at, under the sleepers' lock, so
/// that no worker counted asleep is meanwhile cancelling its sleep to
/// run work it saw (as in [`Idle::leave_all`]); and in one load, so that
/// no worker counts twice.
pub(crate) fn stuck<P: Waiting>(p: &P) -> bool {
    // Each caller counted itself first (asleep; blocked; the shutdown
    // flag) and reads the others' marks after this fence: of two racing,
    // at least one sees the other.
    fence(Ordering::SeqCst);
    if !p.shutting_down() || !p.any_blocked() {
        return false;
    }
    let mut waiting = Vec::new();
    for i in 0..p.workers() {
        let blocks = p.blocks(i);
        if !p.is_blocked(i) {
            continue;
        }
        if p.is_woken(i) {
            return false;
        }
        waiting.push((i, blocks));
    }
    if waiting.is_empty() {
        return false;
    }
    let live = p.live();
    let idle = p
        .idle()
        .with_sleepers_locked(|sleeping| sleeping + waiting.len() >= live && !p.has_visible_work());
    // The second read in the other order: a wake-up taken between its
    // flag and a read of `is_blocked` before it would pass unseen.
    idle && waiting
        .iter()
        .all(|&(i, blocks)| !p.is_woken(i) && p.is_blocked(i) && p.blocks(i) == blocks)
}

/// Worker `index`, out of work, parks until notified; `searching` is its
/// flag (searching again when it wakes). Returns false when it must exit.
///
/// Shutting down, a worker out of work leaves only once every other live
/// worker is out of work too (asleep, here): one inside a task may still
/// hand work over (a task blocked in `sync_wait` on a child in its
/// worker's LIFO slot, a task woken later), which only a worker still
/// there can run. The last to run out of work wakes them all, and they
/// all leave.
pub(crate) fn park<P: Parking>(p: &P, index: usize, searching: &mut bool) -> bool {
    let idle = p.idle();
    idle.sleep(index, std::mem::take(searching));
    // The flag before the look at the queues: a decision to leave below
    // must rest on a look taken after the shutdown it acts on began, so
    // that it sees every task spawned before `shutdown()` (read after the
    // look, the flag could be newer than the look, and a task spawned
    // just before the shutdown was dropped as late work).
    let shutting_down = p.shutting_down();
    if p.leaving().load(Ordering::SeqCst) {
        // Final: the pool was idle and empty when it was set; what came
        // after is late work, which the pool's clean-up cancels (a task
        // run now could block on a child nobody would be left to run).
        return leave(p, index, searching);
    }
    if shutting_down {
        // Workers blocked in `sync_wait` never sleep here: were they all
        // that is left, `leave_all` below would wait for them for ever.
        p.cancel_suspended_if_stuck();
    }
    if p.has_visible_work() {
        if !idle.cancel_sleep(index) {
            // Someone already woke us (and made us searching): eat the
            // token it is about to leave. It may have been the last
            // worker out of work, waking everyone to leave (`leave_all`):
            // leaving is final, and this work is late.
            p.wait_for_token(index);
            *searching = true;
            if p.leaving().load(Ordering::SeqCst) {
                return leave(p, index, searching);
            }
            return true;
        }
        // Off the list before anyone decided to leave (see `leave_all`).
        *searching = true;
        return true;
    }
    if shutting_down {
        if let Some(all) = idle.leave_all(p.live(), p.leaving()) {
            // Nobody is inside a task any more: everyone leaves.
            for i in all {
                p.unpark(i);
            }
            return leave(p, index, searching);
        }
    }
    // The waker moves us from sleeping to searching.
    p.wait_for_token(index);
    *searching = true;
    if p.leaving().load(Ordering::SeqCst) {
        return leave(p, index, searching);
    }
    true
}

/// Exit the loop: off the sleepers (some `wake_all` took us off and left
/// a token) and out of the searching count, so that the state word stays
/// balanced.
fn leave<P: Parking>(p: &P, index: usize, searching: &mut bool) -> bool {
    if !*searching && !p.idle().cancel_sleep(index) {
        // Not listed any more: a `wake_all` counted us searching and left
        // a token.
        p.wait_for_token(index);
    }
    *searching = false;
    p.idle().stop_searching();
    false
}
