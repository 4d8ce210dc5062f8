//! Work spread over the cores, its answers taken in order on the calling thread.
//!
//! A start-up with a large queue reads, parses and compares every queued post. The reading
//! and comparing need nothing but the files and read-only data, while what follows (the
//! log, the picture, the holds) belongs to the calling thread and must see the posts in
//! order. [`map_in_order`] runs the first part on worker threads and hands each answer back
//! in order; each worker stays a bounded number of answers ahead, so memory does not grow
//! with the input however slow the caller is.

use std::sync::mpsc::sync_channel;

/// Files to read before reading them on every core pays (starting threads costs more
/// than reading a few dozen small files).
pub const FILES_FROM: usize = 64;

/// Answers go to the caller in batches of this many consecutive items: one hand-over (and
/// at most one wake-up) per batch instead of per item.
pub(crate) const BATCH: usize = 64;
/// Batches each worker computes ahead of the caller.
const AHEAD: usize = 4;
/// Workers at most (a start-up has more to do than cores on small machines only).
const MAX_WORKERS: usize = 8;

/// Calls `each(i, work(i))` for every `i` below `n`, in order, on the calling thread.
/// `work` runs on worker threads (one per core, up to 8) when there are at least `from`
/// items and more than one core; otherwise everything runs here. Each worker is at most
/// a few hundred answers ahead of `each`. A panic in `work` or `each` is raised again
/// here once the workers stopped.
pub fn map_in_order<T: Send>(
    n: usize,
    from: usize,
    work: impl Fn(usize) -> T + Sync,
    mut each: impl FnMut(usize, T),
) {
    if !spreads(n, from) {
        for i in 0..n {
            if i % BATCH == 0 {
                crate::progress::advanced();
            }
            each(i, work(i));
        }
        return;
    }
    let workers = workers();
    let batches = n.div_ceil(BATCH);
    std::thread::scope(|scope| {
        let work = &work;
        let answers: Vec<_> = (0..workers)
            .map(|w| {
                let (tx, rx) = sync_channel::<Vec<T>>(AHEAD);
                scope.spawn(move || {
                    for b in (w..batches).step_by(workers) {
                        let batch = (b * BATCH..n.min((b + 1) * BATCH)).map(work).collect();
                        if tx.send(batch).is_err() {
                            return; // the caller stopped (it panicked)
                        }
                    }
                });
                rx
            })
            .collect();
        for b in 0..batches {
            // A worker that panicked closed its channel: the scope raises its panic.
            let Ok(batch) = answers[b % workers].recv() else {
                return;
            };
            crate::progress::advanced();
            for (j, answer) in batch.into_iter().enumerate() {
                each(b * BATCH + j, answer);
            }
        }
    });
}

/// Whether [`map_in_order`] runs `n` items on worker threads when told to from `from`.
pub fn spreads(n: usize, from: usize) -> bool {
    workers() >= 2 && n >= from.max(2)
}

/// Threads for work on every core: one per core, up to [`MAX_WORKERS`].
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WORKERS)
}

/// Sorts `v` as `sort_unstable` does, on every core when it holds at least `from` items.
/// `key(x)` must be the first thing `x`'s order compares and spread evenly over `u32` (a
/// hash): `v` is split in place at the middle of the key range, as often as there are
/// cores to share the parts, and each part sorted on a thread of its own. No second buffer
/// (a 100,000-post start-up sorts 4 million postings, 49 MB); a skewed key only makes the
/// parts uneven.
pub fn sort_by_spread_key<T: Ord + Send>(v: &mut [T], from: usize, key: impl Fn(&T) -> u32 + Sync) {
    let depth = workers().next_power_of_two().trailing_zeros();
    sort_part(v, from.max(2), &key, 0, 1 << 32, depth);
}

fn sort_part<T: Ord + Send>(
    v: &mut [T],
    from: usize,
    key: &(impl Fn(&T) -> u32 + Sync),
    lo: u64,
    hi: u64,
    depth: u32,
) {
    if depth == 0 || v.len() < from || hi - lo < 2 {
        v.sort_unstable();
        return;
    }
    let mid = lo + (hi - lo) / 2;
    let k = partition(v, |x| u64::from(key(x)) < mid);
    let (left, right) = v.split_at_mut(k);
    std::thread::scope(|s| {
        s.spawn(|| sort_part(left, from, key, lo, mid, depth - 1));
        sort_part(right, from, key, mid, hi, depth - 1);
    });
}

/// Moves the items for which `low` holds before the others; returns how many there are.
fn partition<T>(v: &mut [T], low: impl Fn(&T) -> bool) -> usize {
    let (mut i, mut j) = (0, v.len());
    loop {
        while i < j && low(&v[i]) {
            i += 1;
        }
        while i < j && !low(&v[j - 1]) {
            j -= 1;
        }
        if i >= j {
            return i;
        }
        v.swap(i, j - 1);
        i += 1;
        j -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the keys (spread, equal, all at one end), the order is `sort_unstable`'s.
        #[test]
        fn sorting_by_a_spread_key_on_every_core_sorts(
            v in prop::collection::vec((any::<u32>(), any::<u16>()), 0..400),
            skew in 0u32..3,
        ) {
            let mut v: Vec<(u32, u16)> = v
                .into_iter()
                .map(|(k, x)| match skew { 0 => (k, x), 1 => (7, x), _ => (k >> 28, x) })
                .collect();
            let mut expected = v.clone();
            expected.sort_unstable();
            sort_by_spread_key(&mut v, 2, |x| x.0);
            prop_assert_eq!(v, expected);
        }
    }

    #[test]
    fn answers_come_in_order_whatever_the_workers_speed() {
        for n in [0, 1, 2, 3, 63, 64, 65, 1000] {
            let mut seen = Vec::new();
            map_in_order(
                n,
                0,
                |i| {
                    // Uneven work, so the workers finish out of order.
                    if i % 7 == 0 {
                        std::thread::yield_now();
                    }
                    i * i
                },
                |i, sq| seen.push((i, sq)),
            );
            assert_eq!(seen, (0..n).map(|i| (i, i * i)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            map_in_order(
                5000,
                0,
                |i| {
                    assert_ne!(i, 4321, "work failed");
                    i
                },
                |_, _| {},
            );
        });
        assert!(caught.is_err());
    }

    #[test]
    fn a_panic_in_the_caller_stops_the_workers() {
        // The workers are blocked on a full channel when the caller panics: the scope
        // must still end (they see the channel closed), not hang.
        let caught = std::panic::catch_unwind(|| {
            map_in_order(100_000, 0, |i| i, |i, _| assert_ne!(i, 10, "caller failed"));
        });
        assert!(caught.is_err());
    }
}
