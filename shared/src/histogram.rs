//! `Histogram`: a mergeable latency histogram with 1 % relative accuracy (DDSketch's logarithmic
//! mapping, Masson et al., VLDB 2019) and a *sparse* store: a sorted list of (bin, count).
//!
//! Why not a crate: the store keeps one histogram per map edge per second, and the crates'
//! stores are dense — hdrhistogram's counts array at two significant digits is ~26 KB, and
//! `sketches-ddsketch` allocates 128-bin chunks for each of its two stores (~2 KB) — so 3,000
//! edges over 15 minutes would need gigabytes. An edge's second holds a handful of requests; its
//! histogram here is a few bins of 6 bytes. Merging adds counts bin by bin, so the histogram of
//! a window is exactly the histogram of its requests, whatever the order they were added in.

use serde::{Deserialize, Serialize};

/// Relative accuracy of a quantile: the value returned is within 1 % of a value in the bin.
const ALPHA: f64 = 0.01;
/// γ = (1 + α) / (1 − α): bin `k` holds values in (γ^(k−1), γ^k].
const GAMMA: f64 = (1.0 + ALPHA) / (1.0 - ALPHA);

/// Counts of microsecond values by logarithmic bin. Bin 0 holds 0 µs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// (bin, count), sorted by bin, no zero counts.
    bins: Vec<(u16, u32)>,
    count: u64,
}

fn bin_of(us: u64) -> u16 {
    if us == 0 {
        return 0;
    }
    // ln(2^64) / ln(γ) ≈ 2,218: every u64 fits in a u16 bin.
    ((us as f64).ln() / GAMMA.ln()).ceil().max(1.0) as u16
}

/// The value a bin stands for: the point with the same relative distance to both its bounds.
fn value_of(bin: u16) -> f64 {
    if bin == 0 {
        return 0.0;
    }
    2.0 * GAMMA.powi(i32::from(bin)) / (GAMMA + 1.0)
}

impl Histogram {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds one value.
    pub fn add(&mut self, us: u64) {
        let bin = bin_of(us);
        self.count += 1;
        // Values of one edge cluster: the bin is usually the last one or near it.
        match self.bins.binary_search_by_key(&bin, |(b, _)| *b) {
            Ok(i) => self.bins[i].1 += 1,
            Err(i) => self.bins.insert(i, (bin, 1)),
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.bins.is_empty() {
            return;
        }
        if self.bins.is_empty() {
            self.clone_from(other);
            return;
        }
        // Merging into an accumulator that already has most of the bins: add in place, then put
        // the few new bins where they belong.
        let before = self.bins.len();
        for &(bin, n) in &other.bins {
            match self.bins[..before].binary_search_by_key(&bin, |(b, _)| *b) {
                Ok(i) => self.bins[i].1 += n,
                Err(_) => self.bins.push((bin, n)),
            }
        }
        if self.bins.len() > before {
            self.bins.sort_unstable_by_key(|(b, _)| *b);
        }
        self.count += other.count;
    }

    /// The same as `merge`, by a sorted merge into a new list (kept to check `merge` against).
    #[cfg(test)]
    fn merge_sorted(&mut self, other: &Histogram) {
        let mut merged = Vec::with_capacity(self.bins.len() + other.bins.len());
        let (mut a, mut b) = (self.bins.iter().peekable(), other.bins.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    let sum = (x.0, x.1 + y.1);
                    a.next();
                    b.next();
                    sum
                }
                (Some(x), Some(y)) if x.0 < y.0 => *a.next().expect("peeked"),
                (Some(_), Some(_)) | (None, Some(_)) => *b.next().expect("peeked"),
                (Some(_), None) => *a.next().expect("peeked"),
                (None, None) => break,
            };
            merged.push(next);
        }
        self.bins = merged;
        self.count += other.count;
    }

    /// The nearest-rank `p`-th percentile (0–100) in microseconds; `None` when empty.
    pub fn percentile_us(&self, p: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for &(bin, n) in &self.bins {
            seen += u64::from(n);
            if seen >= rank {
                return Some(value_of(bin));
            }
        }
        self.bins.last().map(|&(bin, _)| value_of(bin))
    }

    /// The same in milliseconds, rounded to the microsecond.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        self.percentile_us(p).map(|us| us.round() / 1000.0)
    }

    /// Heap bytes held, for the store's memory figure.
    pub fn heap_bytes(&self) -> usize {
        self.bins.capacity() * std::mem::size_of::<(u16, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_one_percent() {
        let mut h = Histogram::new();
        (1..=1000u64).for_each(|i| h.add(i * 100));
        for (p, exact) in [(50.0, 50_000.0), (95.0, 95_000.0), (99.0, 99_000.0)] {
            let got = h.percentile_us(p).unwrap();
            assert!((got - exact).abs() / exact <= ALPHA * 1.01, "p{p}: {got} vs {exact}");
        }
        assert_eq!(Histogram::new().percentile_us(50.0), None);
        let mut zero = Histogram::new();
        zero.add(0);
        assert_eq!(zero.percentile_us(99.0), Some(0.0));
    }

    #[test]
    fn merging_equals_adding_everything_to_one() {
        let values: Vec<u64> = (0..500u64).map(|i| (i * 7919) % 100_003).collect();
        let mut all = Histogram::new();
        values.iter().for_each(|&v| all.add(v));
        let (mut left, mut right) = (Histogram::new(), Histogram::new());
        values.iter().enumerate().for_each(|(i, &v)| if i % 3 == 0 { left.add(v) } else { right.add(v) });
        let mut merged = right.clone();
        merged.merge(&left);
        assert_eq!(merged, all);
        let mut sorted = right.clone();
        sorted.merge_sorted(&left);
        assert_eq!(sorted, all);
        left.merge(&right);
        assert_eq!(left, all);
    }

    #[test]
    fn huge_values_fit() {
        let mut h = Histogram::new();
        h.add(u64::MAX);
        assert!(h.percentile_us(50.0).unwrap() > 1e19);
    }
}
