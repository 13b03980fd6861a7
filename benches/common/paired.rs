//! Paired rounds: cases measured in alternation, in many short rounds, with ratios
//! taken within each round.
//!
//! Reads bound by memory latency are hard to compare across criterion's rows on a
//! shared virtual machine: its memory latency drifts by up to 2× within minutes, and
//! criterion measures one case after another, seconds apart. Here every round times one
//! short batch of every case back to back (a few milliseconds in all), so the cases of
//! a round see the same machine; the medians over the rounds of each case's time and
//! of each pair's per-round ratio are what the tables report.
//!
//! [`Rounds::run`] and [`Rounds::run_threads`] only schedule and record; the caller's
//! `time(case, round)` runs the case's batch (usually with [`batch`]) and returns its
//! time per operation.

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::Instant;

/// Times `op(idx[k])` for `n` consecutive positions `k` of `idx` from `start`
/// (wrapping; `idx.len()` is a power of two), in ns per op. What `op` returns is passed
/// through `black_box`, and whatever it built is dropped inside the timed loop.
pub(crate) fn batch(idx: &[u32], start: usize, n: usize, op: impl Fn(usize) -> usize) -> f64 {
    debug_assert!(idx.len().is_power_of_two());
    let mask = idx.len() - 1;
    let t = Instant::now();
    for k in 0..n {
        black_box(op(idx[(start + k) & mask] as usize));
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// Where in the index array case `case` of round `round` starts its batch of `n`: every
/// batch its own keys (wrapping), so no case reads what the one before it just brought
/// into the CPU caches.
pub(crate) fn start(cases: usize, case: usize, round: usize, n: usize) -> usize {
    (round * cases + case) * n
}

/// The order of the cases in round `round`: rotated by one every two rounds, forwards
/// in even rounds and backwards in odd ones, so every case runs in every position and
/// after each of its two neighbours alike.
pub(crate) fn order(cases: usize, round: usize) -> impl Iterator<Item = usize> {
    let q = round / 2;
    let backwards = round % 2 == 1;
    (0..cases).map(move |k| {
        if backwards {
            (q + cases - 1 - k) % cases
        } else {
            (q + k) % cases
        }
    })
}

/// The recorded rounds: `ns[case][round]` is the case's time per op in that round.
pub(crate) struct Rounds {
    pub(crate) ns: Vec<Vec<f64>>,
}

/// A spread over the rounds: the median, the quartiles and the extremes.
#[derive(Clone, Copy)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) q1: f64,
    pub(crate) q3: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Self {
        assert!(!v.is_empty(), "no rounds");
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Self {
            median: at(0.5),
            q1: at(0.25),
            q3: at(0.75),
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

impl Rounds {
    /// `rounds` rounds of `cases` cases on this thread, after one round that is not
    /// recorded (a warm-up: first touches, lazy initialisation).
    pub(crate) fn run(
        cases: usize,
        rounds: usize,
        mut time: impl FnMut(usize, usize) -> f64,
    ) -> Self {
        let mut ns = vec![Vec::with_capacity(rounds); cases];
        for round in 0..=rounds {
            for case in order(cases, round) {
                let t = time(case, round);
                if round > 0 {
                    ns[case].push(t);
                }
            }
        }
        Self { ns }
    }

    /// The same with `threads` threads running every batch at once: before each batch
    /// they meet at a barrier, and `time(thread, case, round)` is each one's time per
    /// op; a case's time in a round is the mean of the threads' (a per-thread time).
    pub(crate) fn run_threads(
        threads: usize,
        cases: usize,
        rounds: usize,
        time: impl Fn(usize, usize, usize) -> f64 + Sync,
    ) -> Self {
        let barrier = Barrier::new(threads);
        let per_thread: Vec<Vec<Vec<f64>>> = thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let (barrier, time) = (&barrier, &time);
                    s.spawn(move || {
                        let mut ns = vec![Vec::with_capacity(rounds); cases];
                        for round in 0..=rounds {
                            for case in order(cases, round) {
                                barrier.wait();
                                let v = time(t, case, round);
                                if round > 0 {
                                    ns[case].push(v);
                                }
                            }
                        }
                        ns
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("a paired-rounds thread panicked"))
                .collect()
        });
        let ns = (0..cases)
            .map(|c| {
                (0..rounds)
                    .map(|r| per_thread.iter().map(|t| t[c][r]).sum::<f64>() / threads as f64)
                    .collect()
            })
            .collect();
        Self { ns }
    }

    pub(crate) fn rounds(&self) -> usize {
        self.ns.first().map_or(0, Vec::len)
    }

    /// Case `case`'s time per op over the rounds.
    pub(crate) fn time(&self, case: usize) -> Spread {
        Spread::of(self.ns[case].clone())
    }

    /// Per round, case `a`'s time over case `b`'s, over the rounds.
    pub(crate) fn ratio(&self, a: usize, b: usize) -> Spread {
        Spread::of(
            self.ns[a]
                .iter()
                .zip(&self.ns[b])
                .map(|(x, y)| x / y)
                .collect(),
        )
    }
}
