//! A log-linear histogram of durations in nanoseconds, HDR style: values
//! below 128 ns are exact, larger ones keep their top 7 significant bits,
//! so every recorded value is known to within 1/64 (1.6 %).

/// Values below this are counted exactly, one bucket each.
const LINEAR: u64 = 128;
/// Buckets per power of two above `LINEAR`.
const SUB: u64 = 64;
/// Enough buckets for any u64.
const BUCKETS: usize = (LINEAR + (64 - 7) * SUB) as usize;

/// Counts of values per bucket.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            sum: 0,
            max: 0,
        }
    }
}

fn index(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros() as u64; // >= 7
    let shift = msb - 6; // keep the top 7 bits: mantissa in 64..128
    let mantissa = value >> shift;
    (LINEAR + (shift - 1) * SUB + (mantissa - SUB)) as usize
}

/// The largest value that falls in bucket `i`.
fn upper_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let shift = (i - LINEAR) / SUB + 1;
    let mantissa = (i - LINEAR) % SUB + SUB;
    ((mantissa + 1) << shift) - 1
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, value: u64) {
        self.counts[index(value)] += 1;
        self.total += 1;
        self.sum += u128::from(value);
        self.max = self.max.max(value);
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The mean, or 0 when empty.
    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / u128::from(self.total)) as u64
        }
    }

    /// The largest value recorded.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the upper bound of the bucket
    /// holding the ceil(q * n)-th smallest value, capped by the maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_bound(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..1_000_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS);
            assert!(i >= last, "{v}");
            last = i;
            let hi = upper_bound(i);
            assert!(hi >= v, "{v} above its bucket {hi}");
            assert!(hi - v <= v / 64, "{v}: bucket too wide ({hi})");
            if i > 0 {
                assert!(upper_bound(i - 1) < v);
            }
        }
    }

    #[test]
    fn quantiles_of_a_uniform_range() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        let close = |a: u64, b: u64| a.abs_diff(b) <= b / 50;
        assert!(close(h.quantile(0.5), 50_000_000), "{}", h.quantile(0.5));
        assert!(close(h.quantile(0.99), 99_000_000));
        assert!(close(h.quantile(0.999), 99_900_000));
        assert_eq!(h.quantile(1.0), 100_000_000);
        assert_eq!(h.len(), 100_000);
    }
}
