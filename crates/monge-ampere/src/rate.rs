//! Measured convergence rates: the slope p of log y against log x, y ≈ C x^p, by least squares —
//! what a rate table quotes next to a theorem's O(T^{−1}), O(T^{−1/2}), O(log T / T).

/// The fitted exponent p over the points with x > 0 and y > `floor` (values at the floor, e.g.
/// an exponentially converged KL at round-off, say nothing about a power law), and how many
/// points were used; None with fewer than two.
pub fn fitted_rate(points: &[(f64, f64)], floor: f64) -> Option<(f64, usize)> {
    let used: Vec<(f64, f64)> =
        points.iter().filter(|(x, y)| *x > 0.0 && *y > floor && y.is_finite()).map(|(x, y)| (x.ln(), y.ln())).collect();
    let n = used.len();
    if n < 2 {
        return None;
    }
    let (mx, my) = used.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n as f64, b + y / n as f64));
    let sxx: f64 = used.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = used.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    Some((sxy / sxx, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_laws_are_recovered_and_floors_skipped() {
        let pts: Vec<(f64, f64)> = (2..10).map(|k| (2f64.powi(k), 3.0 * 2f64.powi(k).powf(-0.5))).collect();
        let (p, n) = fitted_rate(&pts, 0.0).unwrap();
        assert!((p + 0.5).abs() < 1e-12 && n == 8);
        let mut with_floor = pts.clone();
        with_floor.push((4096.0, 1e-300));
        assert_eq!(fitted_rate(&with_floor, 1e-12).unwrap().1, 8);
        assert!(fitted_rate(&pts[..1], 0.0).is_none());
    }
}
