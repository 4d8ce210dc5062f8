//! Long work on one thread saying that it advances, for whoever waits on it (the daemon's
//! keep-alive to systemd during a start-up or a reload), without knowing who that is.

use std::cell::RefCell;

thread_local! {
    /// What [`advanced`] calls on this thread ([`with_progress`]).
    static ON_PROGRESS: RefCell<Option<Box<dyn FnMut()>>> = const { RefCell::new(None) };
}

/// Runs `body` with `tick` called each time work on this thread says it [`advanced`]:
/// long work (the daemon's review of a large queue) tells systemd it is advancing, and
/// stops telling it the moment it stalls. Whatever `tick` was set before is
/// set again afterwards, also when `body` panics.
pub fn with_progress<R>(tick: impl FnMut() + 'static, body: impl FnOnce() -> R) -> R {
    struct Restore(Option<Box<dyn FnMut()>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let before = self.0.take();
            ON_PROGRESS.with(|p| *p.borrow_mut() = before);
        }
    }
    let before = ON_PROGRESS.with(|p| p.borrow_mut().replace(Box::new(tick)));
    let _restore = Restore(before);
    body()
}

/// A step of long work was done: calls this thread's `tick`, if any (not from inside
/// itself). [`crate::parallel::map_in_order`] says so for each batch it takes up, the
/// indexing of an older log's history for each chunk.
pub fn advanced() {
    ON_PROGRESS.with(|p| {
        if let Ok(mut p) = p.try_borrow_mut()
            && let Some(tick) = p.as_mut()
        {
            tick();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::parallel::{BATCH, map_in_order};

    #[test]
    fn progress_ticks_as_batches_are_taken_up_and_the_tick_before_comes_back() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let outer = Arc::new(AtomicUsize::new(0));
        let inner = Arc::new(AtomicUsize::new(0));
        let o = Arc::clone(&outer);
        with_progress(
            move || {
                o.fetch_add(1, Ordering::Relaxed);
            },
            || {
                // On worker threads (if this machine has two cores) and on this one.
                for from in [0, usize::MAX] {
                    let i = Arc::clone(&inner);
                    with_progress(
                        move || {
                            i.fetch_add(1, Ordering::Relaxed);
                        },
                        || map_in_order(10 * BATCH, from, |i| i, |_, _| {}),
                    );
                }
                // The outer tick is back after the inner `with_progress`, even one that
                // panicked.
                let panicked = std::panic::catch_unwind(|| {
                    with_progress(|| {}, || panic!("a review that fails"))
                });
                assert!(panicked.is_err());
                map_in_order(BATCH, usize::MAX, |i| i, |_, _| {});
            },
        );
        assert_eq!(
            inner.load(Ordering::Relaxed),
            20,
            "one tick a batch, both ways"
        );
        assert_eq!(outer.load(Ordering::Relaxed), 1);
        // None outside.
        map_in_order(BATCH, usize::MAX, |i| i, |_, _| {});
        assert_eq!(outer.load(Ordering::Relaxed), 1);
    }
}
