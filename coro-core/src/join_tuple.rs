//! The tuple forms `when_all!` and `when_any!`: one struct per arity, pinned
//! fields through `pin-project-lite` (no boxing, no `unsafe`).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

pin_project! {
    /// A child of a tuple join: running, finished with its output, or emptied.
    #[project = MaybeDoneProj]
    #[project_replace = MaybeDoneReplace]
    pub enum MaybeDone<F: Future> {
        Running { #[pin] fut: F },
        Done { out: F::Output },
        Taken,
    }
}

impl<F: Future> MaybeDone<F> {
    fn new(fut: F) -> Self {
        MaybeDone::Running { fut }
    }

    /// Polls the child if it is running; `true` once it has finished.
    fn poll_step(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        match self.as_mut().project() {
            MaybeDoneProj::Running { fut } => match fut.poll(cx) {
                Poll::Ready(out) => {
                    self.set(MaybeDone::Done { out });
                    true
                }
                Poll::Pending => false,
            },
            MaybeDoneProj::Done { .. } => true,
            MaybeDoneProj::Taken => panic!("`when_all!` future polled after it completed"),
        }
    }

    fn take(self: Pin<&mut Self>) -> F::Output {
        match self.project_replace(MaybeDone::Taken) {
            MaybeDoneReplace::Done { out } => out,
            _ => unreachable!("take() is only called once every child is done"),
        }
    }
}

/// A tuple of futures that `when_all!` can join.
pub trait IntoJoin {
    /// The joined future.
    type Join: Future;
    /// Builds the joined future.
    fn into_join(self) -> Self::Join;
}

/// A tuple of futures with one output type that `when_any!` can race.
pub trait IntoRace {
    /// The racing future.
    type Race: Future;
    /// Builds the racing future.
    fn into_race(self) -> Self::Race;
}

/// `when_all!((a, b, ...))`.
pub fn join<T: IntoJoin>(futures: T) -> T::Join {
    futures.into_join()
}

/// `when_any!((a, b, ...))`.
pub fn race<T: IntoRace>(futures: T) -> T::Race {
    futures.into_race()
}

/// The child to poll first next time, after a poll that started at
/// `first` of `n`: argument order (0) while the task's budget lasts. The
/// children share it (`coop`): one always ready, always polled first, would
/// spend all of it every poll and leave the others none (a lock they were
/// handed, a wake-up they were given, would wait with them). So once a
/// poll ran it out, the children take turns going first.
fn next_turn(first: usize, n: usize) -> usize {
    if crate::coop::budget_spent() {
        (first + 1) % n
    } else {
        0
    }
}

/// [`next_turn`] for `when_all!`: polled by another executor (the task
/// has no budget of ours, and that executor's own, tokio's, cannot be
/// seen), a child that spends that budget every
/// poll would starve the others of it (their channel or timer answering
/// `Pending` for good), so the children take turns on every poll, as
/// `tokio::join!` does.
fn next_join_turn(first: usize, n: usize) -> usize {
    if crate::coop::polled_elsewhere() {
        (first + 1) % n
    } else {
        next_turn(first, n)
    }
}

/// Run `$body` once for each child field `$f` of `$this`, starting at child
/// `$first` and wrapping around; in it, `$child` is the pinned child and
/// `$at` its argument position.
macro_rules! in_turn {
    ($this:ident, $first:expr; $($f:ident),+; |$child:ident, $at:ident| $body:block) => {{
        let n = [$(stringify!($f)),+].len();
        for k in 0..n {
            let i = ($first + k) % n;
            let mut $at = 0;
            $(
                if $at == i {
                    let $child = $this.$f.as_mut();
                    $body
                }
                $at += 1;
            )+
            let _ = $at;
        }
        n
    }};
}

macro_rules! tuple_impls {
    ($Join:ident $Race:ident; $($F:ident $f:ident),+) => {
        pin_project! {
            /// The future of `when_all!` for this arity.
            #[must_use = "futures do nothing unless you .await or poll them"]
            pub struct $Join<$($F),+> where $($F: Future),+ {
                $(#[pin] $f: MaybeDone<$F>,)+
                // The child polled first: 0 unless the task's budget ran
                // out in the last poll, then the next one each time.
                turn: usize,
            }
        }

        impl<$($F: Future),+> Future for $Join<$($F),+> {
            type Output = ($($F::Output,)+);

            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                let mut this = self.project();
                let mut all_done = true;
                let first = *this.turn;
                let n = in_turn!(this, first; $($f),+; |child, _at| {
                    all_done &= child.poll_step(cx);
                });
                *this.turn = next_join_turn(first, n);
                if all_done {
                    Poll::Ready(($(this.$f.as_mut().take(),)+))
                } else {
                    Poll::Pending
                }
            }
        }

        impl<$($F: Future),+> fmt::Debug for $Join<$($F),+> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($Join)).finish_non_exhaustive()
            }
        }

        impl<$($F: IntoFuture),+> IntoJoin for ($($F,)+) {
            type Join = $Join<$($F::IntoFuture),+>;
            fn into_join(self) -> Self::Join {
                let ($($f,)+) = self;
                $Join { $($f: MaybeDone::new($f.into_future()),)+ turn: 0 }
            }
        }

        pin_project! {
            /// The future of `when_any!` for this arity.
            #[must_use = "futures do nothing unless you .await or poll them"]
            #[derive(Debug)]
            pub struct $Race<$($F),+> {
                $(#[pin] $f: $F,)+
                done: bool,
                // The child polled first: 0 unless the task's budget ran
                // out in the last poll, then the next one each time.
                turn: usize,
            }
        }

        impl<T, $($F: Future<Output = T>),+> Future for $Race<$($F),+> {
            type Output = (usize, T);

            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                let mut this = self.project();
                assert!(!*this.done, "`when_any!` future polled after it completed");
                let first = *this.turn;
                let n = in_turn!(this, first; $($f),+; |child, at| {
                    if let Poll::Ready(out) = child.poll(cx) {
                        *this.done = true;
                        return Poll::Ready((at, out));
                    }
                });
                // Argument order while the budget lasts (the tie-break);
                // see `next_turn`.
                *this.turn = next_turn(first, n);
                Poll::Pending
            }
        }

        impl<T, $($F: IntoFuture<Output = T>),+> IntoRace for ($($F,)+) {
            type Race = $Race<$($F::IntoFuture),+>;
            fn into_race(self) -> Self::Race {
                let ($($f,)+) = self;
                $Race { $($f: $f.into_future(),)+ done: false, turn: 0 }
            }
        }
    };
}

tuple_impls!(Join1 Race1; A a);
tuple_impls!(Join2 Race2; A a, B b);
tuple_impls!(Join3 Race3; A a, B b, C c);
tuple_impls!(Join4 Race4; A a, B b, C c, D d);
tuple_impls!(Join5 Race5; A a, B b, C c, D d, E e);
tuple_impls!(Join6 Race6; A a, B b, C c, D d, E e, F f);
tuple_impls!(Join7 Race7; A a, B b, C c, D d, E e, F f, G g);
tuple_impls!(Join8 Race8; A a, B b, C c, D d, E e, F f, G g, H h);
tuple_impls!(Join9 Race9; A a, B b, C c, D d, E e, F f, G g, H h, I i);
tuple_impls!(Join10 Race10; A a, B b, C c, D d, E e, F f, G g, H h, I i, J j);
tuple_impls!(Join11 Race11; A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k);
tuple_impls!(Join12 Race12; A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k, L l);

/// Awaits up to 12 futures of any types concurrently and returns a tuple of
/// their outputs, in argument order.
///
/// The futures run on the awaiting task. Every wake-up polls the children that
/// are still running (at most 12; use [`when_all`](crate::when_all()) for many
/// futures of one type: it polls only the woken child), in argument order;
/// after a poll that ran the task's budget out ([`coop`](crate::coop)), the
/// next starts one child further, so that one always ready cannot keep the
/// others from their turn. Polled by another executor (tokio), whose own
/// budget it cannot see, it starts one child further on every poll, as
/// `tokio::join!` does. No allocation.
///
/// # Examples
/// ```
/// use coro_core::{sync_wait, when_all};
///
/// let square = |x: f64| async move { x * x };
/// let twice = |x: u64| async move { x + x };
/// let (first, second) = sync_wait(async { when_all!(square(1.5), twice(10)).await });
/// assert_eq!((first, second), (2.25, 20));
/// ```
///
/// # Panics
/// A panic in a child propagates to the awaiter; the other children are
/// dropped with the future.
///
/// # Cancel safety
/// Dropping the future drops every child and every output already produced.
#[doc(alias = "join")]
#[macro_export]
macro_rules! when_all {
    ($($fut:expr),+ $(,)?) => {
        $crate::__private::join(($($fut,)+))
    };
}

/// Awaits up to 12 futures with the same output type and returns
/// `(index, output)` of the first to finish; the others are dropped when the
/// returned future is.
///
/// Children are polled in argument order on every wake-up, so the earlier one
/// wins a tie, with one exception. They share the task's budget
/// ([`coop`](crate::coop)): a child that is always ready and never finishes
/// (a loop over reads that always have data) spends it every poll, and the
/// children after it that count against it (a channel receive, an op) would
/// never complete. So after a poll that ran the budget out, the next poll
/// starts one child further, and so on until a poll leaves budget over;
/// a tie in those polls goes to the child polled first. Polled by another
/// executor it keeps argument order (ties stay predictable), and it cannot
/// see that executor's budget: under tokio, a child that spends tokio's
/// budget on every poll leaves the children after it that use tokio's
/// resources none; put such a child last, or use `tokio::select!`, which
/// picks a random start.
///
/// # Examples
/// ```
/// use coro_core::{sync_wait, when_any};
///
/// let won = sync_wait(async { when_any!(std::future::pending::<i64>(), async { -1 }).await });
/// assert_eq!(won, (1, -1));
/// ```
///
/// # Panics
/// A panic in a child propagates to the awaiter. Polling after completion panics.
///
/// # Cancel safety
/// Dropping the future drops every child.
#[doc(alias = "select")]
#[macro_export]
macro_rules! when_any {
    ($($fut:expr),+ $(,)?) => {
        $crate::__private::race(($($fut,)+))
    };
}
