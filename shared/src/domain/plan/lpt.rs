//! Longest-Processing-Time-first packing plus a cheap, deterministic
//! improvement pass. Works on plain weights; the caller owns the meaning.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Upper bound on improvement rounds: each round strictly lowers the sum of
/// squared loads, so the loop ends anyway; the cap bounds the worst case.
const MAX_REFINE_ROUNDS: usize = 10_000;

/// Improvements smaller than this (seconds) are noise, not worth a move.
const EPS: f64 = 1e-9;

/// The pass stops once the makespan is within this fraction of the lower
/// bound: nothing can beat the bound, and a millionth of a shard's time is
/// far below run-to-run noise. Without it, large plans spend rounds evening
/// out shards that cannot shorten the run.
const GOOD_ENOUGH: f64 = 1e-6;

/// An `f64` ordered by `total_cmp`; loads are finite and >= 0 here.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Load(f64);

impl Eq for Load {}

impl PartialOrd for Load {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Load {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Packs items (given in the order to place them, heaviest first) into `n`
/// bins. Each item goes to the bin with the least load; ties go to the bin
/// with fewer items (so zero-weight items never leave a bin empty while
/// another holds two), then to the lowest index. Returns item indices per bin.
pub(crate) fn pack(weights: &[f64], n: usize) -> Vec<Vec<usize>> {
    let mut bins: Vec<Vec<usize>> = vec![Vec::new(); n];
    // Min-heap on (load, item count, bin index).
    let mut heap: BinaryHeap<Reverse<(Load, usize, usize)>> =
        (0..n).map(|i| Reverse((Load(0.0), 0, i))).collect();
    for (item, &w) in weights.iter().enumerate() {
        let Some(Reverse((Load(load), count, bin))) = heap.pop() else {
            break;
        };
        bins[bin].push(item);
        heap.push(Reverse((Load(load + w), count + 1, bin)));
    }
    bins
}

/// Sum of a bin's weights, added in the bin's item order so every caller gets
/// bit-identical totals.
pub(crate) fn load_of(bin: &[usize], weights: &[f64]) -> f64 {
    bin.iter().map(|&i| weights[i]).sum()
}

/// Repeatedly takes the most and least loaded bins and applies the single
/// move (one item from max to min) or swap (one item each way) that brings
/// their loads closest together. Stops when no move strictly helps.
///
/// LPT's known weak spot is the last few items: it can leave one bin a
/// fraction of an item above the others. This pass fixes exactly that case
/// at `O(k log k)` per round (k = items in the two bins).
pub(crate) fn refine(bins: &mut [Vec<usize>], weights: &[f64]) {
    if bins.len() < 2 {
        return;
    }
    let mut loads: Vec<f64> = bins.iter().map(|b| load_of(b, weights)).collect();
    let total: f64 = loads.iter().sum();
    let largest = weights.iter().copied().fold(0.0, f64::max);
    let lower_bound = (total / bins.len() as f64).max(largest);
    for _ in 0..MAX_REFINE_ROUNDS {
        let (mut hi, mut lo) = (0, 0);
        for (i, &l) in loads.iter().enumerate() {
            if l > loads[hi] {
                hi = i;
            }
            if l < loads[lo] {
                lo = i;
            }
        }
        let diff = loads[hi] - loads[lo];
        if diff <= EPS || loads[hi] <= lower_bound * (1.0 + GOOD_ENOUGH) {
            return;
        }
        // Candidates in `lo`, sorted by weight; a virtual weight 0 (position
        // None) stands for "move without taking anything back".
        let mut lo_items: Vec<(f64, usize)> = bins[lo]
            .iter()
            .enumerate()
            .map(|(pos, &it)| (weights[it], pos))
            .collect();
        lo_items.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        // best = (distance from the ideal transfer diff/2, hi position, lo position)
        let mut best: Option<(f64, usize, Option<usize>)> = None;
        let half = diff / 2.0;
        for (hpos, &it) in bins[hi].iter().enumerate() {
            let u = weights[it];
            let mut consider = |v: f64, lpos: Option<usize>| {
                let d = u - v;
                if d > EPS && d < diff - EPS {
                    let score = (d - half).abs();
                    let better = match best {
                        None => true,
                        Some((s, _, _)) => score < s,
                    };
                    if better {
                        best = Some((score, hpos, lpos));
                    }
                }
            };
            consider(0.0, None);
            // The ideal partner weighs u - diff/2: check its neighbours.
            let target = u - half;
            let at = lo_items.partition_point(|&(w, _)| w < target);
            for k in [at.wrapping_sub(1), at] {
                if let Some(&(w, lpos)) = lo_items.get(k) {
                    consider(w, Some(lpos));
                }
            }
        }
        let Some((_, hpos, lpos)) = best else {
            return;
        };
        let moved = bins[hi].remove(hpos);
        if let Some(lpos) = lpos {
            let back = bins[lo].remove(lpos);
            bins[hi].push(back);
        }
        bins[lo].push(moved);
        loads[hi] = load_of(&bins[hi], weights);
        loads[lo] = load_of(&bins[lo], weights);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_places_heaviest_first_on_least_loaded() {
        let bins = pack(&[5.0, 4.0, 3.0, 3.0, 3.0], 2);
        assert_eq!(bins, vec![vec![0, 3], vec![1, 2, 4]]);
    }

    #[test]
    fn zero_weights_never_leave_a_bin_empty() {
        let bins = pack(&[0.0, 0.0, 0.0], 3);
        assert!(bins.iter().all(|b| b.len() == 1));
    }

    #[test]
    fn refine_fixes_lpt_worst_case() {
        // The classic LPT worst case for 2 bins: 3,3,2,2,2 → LPT gives 7 vs OPT 6.
        let w = [3.0, 3.0, 2.0, 2.0, 2.0];
        let mut bins = pack(&w, 2);
        let before: f64 = bins.iter().map(|b| load_of(b, &w)).fold(0.0, f64::max);
        assert_eq!(before, 7.0);
        refine(&mut bins, &w);
        let after: f64 = bins.iter().map(|b| load_of(b, &w)).fold(0.0, f64::max);
        assert_eq!(after, 6.0);
    }
}
