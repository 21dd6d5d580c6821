//! What every chart does to its curves and axes: thin a dense curve to what
//! a pixel column shows, the HPDI band under it, and readable labels.

use domain::bayes::Interval;

/// At most about `max_points` points that keep the curve's shape: each bin of
/// neighbouring grid points is drawn as its highest point, so a narrow peak
/// survives however many grid points share a pixel column.
pub(super) fn envelope(p: &[f64], y: &[f64], max_points: usize) -> Vec<(f64, f64)> {
    let n = p.len().min(y.len());
    if n <= max_points.max(2) {
        return p.iter().copied().zip(y.iter().copied()).take(n).collect();
    }
    let bin = n.div_ceil(max_points.max(1));
    let mut out = Vec::with_capacity(n / bin + 2);
    out.push((p[0], y[0]));
    let mut start = 1;
    while start < n - 1 {
        let end = (start + bin).min(n - 1);
        let best = (start..end)
            .max_by(|a, b| y[*a].total_cmp(&y[*b]))
            .unwrap_or(start);
        out.push((p[best], y[best]));
        start = end;
    }
    out.push((p[n - 1], y[n - 1]));
    out
}

/// The posterior's points inside the HPDI, with the curve interpolated at its bounds.
pub(super) fn hpdi_band(p: &[f64], y: &[f64], hpdi: Interval) -> Vec<(f64, f64)> {
    let n = p.len().min(y.len());
    let at = |x: f64| -> f64 {
        if n == 0 {
            return 0.0;
        }
        let i = p[..n].partition_point(|pi| *pi < x);
        if i == 0 {
            return y[0];
        }
        if i >= n {
            return y[n - 1];
        }
        let (x0, x1) = (p[i - 1], p[i]);
        let t = if x1 > x0 { (x - x0) / (x1 - x0) } else { 0.0 };
        y[i - 1] + t * (y[i] - y[i - 1])
    };
    let mut band = vec![(hpdi.lower, at(hpdi.lower))];
    band.extend(
        p.iter()
            .copied()
            .zip(y.iter().copied())
            .take(n)
            .filter(|(x, _)| *x > hpdi.lower && *x < hpdi.upper),
    );
    band.push((hpdi.upper, at(hpdi.upper)));
    band
}

/// Enough decimals to tell apart y labels about `y_max / 8` apart.
pub(super) fn decimals_for(y_max: f64) -> usize {
    if y_max <= 0.0 || !y_max.is_finite() {
        return 2;
    }
    let step = y_max / 8.0;
    (-step.log10()).ceil().clamp(0.0, 12.0) as usize
}

/// 1234567 as "1.2M", small counts as they are.
pub(super) fn format_count(x: f64) -> String {
    let a = x.abs();
    if a >= 1e9 {
        format!("{:.1}G", x / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a == a.round() {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_keeps_a_narrow_peak() {
        let n = 100_001;
        let p: Vec<f64> = (0..n).map(|i| i as f64 / (n - 1) as f64).collect();
        let mut y = vec![0.0; n];
        y[54_321] = 1.0;
        let env = envelope(&p, &y, 1600);
        assert!(env.len() <= 1603, "{}", env.len());
        assert!(env.contains(&(p[54_321], 1.0)));
        assert_eq!(env.first(), Some(&(0.0, 0.0)));
        assert_eq!(env.last(), Some(&(1.0, 0.0)));
    }

    #[test]
    fn the_hpdi_band_starts_and_ends_on_the_curve() {
        let p = [0.0, 0.5, 1.0];
        let y = [0.0, 1.0, 0.0];
        let band = hpdi_band(
            &p,
            &y,
            Interval {
                lower: 0.25,
                upper: 0.75,
            },
        );
        assert_eq!(band, vec![(0.25, 0.5), (0.5, 1.0), (0.75, 0.5)]);
    }

    #[test]
    fn labels_have_enough_decimals() {
        assert_eq!(decimals_for(0.8), 1);
        assert_eq!(decimals_for(0.15), 2);
        assert_eq!(decimals_for(0.0042), 4);
        assert_eq!(format_count(2_500_000.0), "2.5M");
        assert_eq!(format_count(42.0), "42");
    }
}
