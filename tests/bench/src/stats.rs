//! Latency samples and their summary: ops/s on one thread (from the mean), p50 and p99
//! (nearest rank).

use std::time::Duration;

/// The latencies of one benchmark, in nanoseconds.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    ns: Vec<u64>,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.ns
            .push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn from_ns(ns: Vec<u64>) -> Samples {
        Samples { ns }
    }

    pub fn summary(&self) -> Summary {
        let mut sorted = self.ns.clone();
        sorted.sort_unstable();
        let n = sorted.len();
        if n == 0 {
            return Summary::default();
        }
        let total: u128 = sorted.iter().map(|&v| u128::from(v)).sum();
        let mean = total as f64 / n as f64;
        Summary {
            n,
            mean_ns: mean,
            p50_ns: rank(&sorted, 0.50),
            p99_ns: rank(&sorted, 0.99),
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn rank(sorted: &[u64], q: f64) -> f64 {
    let n = sorted.len();
    let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
    sorted[i] as f64
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub n: usize,
    pub mean_ns: f64,
    pub p50_ns: f64,
    pub p99_ns: f64,
}

impl Summary {
    /// Operations per second on one thread, from the mean latency.
    pub fn ops_per_s(&self) -> f64 {
        if self.mean_ns > 0.0 {
            1e9 / self.mean_ns
        } else {
            0.0
        }
    }
}

/// A latency for people: µs below 10 ms, ms above.
pub fn fmt_ns(ns: f64) -> String {
    if ns <= 0.0 {
        "-".into()
    } else if ns < 1e4 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e7 {
        format!("{:.0} µs", ns / 1e3)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}

/// A throughput for people.
pub fn fmt_ops(ops: f64) -> String {
    if ops <= 0.0 {
        "-".into()
    } else if ops >= 100.0 {
        format!("{ops:.0}")
    } else if ops >= 10.0 {
        format!("{ops:.1}")
    } else {
        format!("{ops:.2}")
    }
}
