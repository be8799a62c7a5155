//! The budget curve of the speed benchmark: native hyper with fixed busy
//! work added per request, and where a throughput share falls on it.

/// Where a throughput share falls on the budget curve, as `about N µs`, or
/// past its slow end. `curve` is (added µs, share of native) by rising
/// added work.
pub fn describe_budget(curve: &[(f64, f64)], share: f64) -> String {
    match added_work_at(curve, share) {
        Some(micros) => format!("about {micros:.1} µs"),
        None if curve.iter().all(|&(_, measured)| share < measured) => {
            let most = curve.last().map_or(0.0, |&(micros, _)| micros);
            format!("more than {most:.0} µs")
        }
        // Only noise can put a step above native's own throughput.
        None => "no figure (the measured steps do not fall through this share)".to_owned(),
    }
}

/// The added work, in µs, at which throughput falls to `share` of
/// native's, interpolated between the two measured points around it;
/// `None` when `share` is outside the curve. The time per request, the
/// inverse of throughput, grows in proportion to the added work, so the
/// interpolation is linear in `1 / share`, not in `share`.
fn added_work_at(curve: &[(f64, f64)], share: f64) -> Option<f64> {
    curve.windows(2).find_map(|pair| {
        let ((work_before, share_before), (work_after, share_after)) = (pair[0], pair[1]);
        if share_before >= share && share >= share_after {
            if share_before == share_after {
                return Some(work_before);
            }
            let fraction =
                (1.0 / share - 1.0 / share_before) / (1.0 / share_after - 1.0 / share_before);
            Some(work_before + fraction * (work_after - work_before))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_interpolated_between_the_measured_points() {
        let curve = [
            (0.0, 1.0),
            (2.0, 0.7),
            (4.0, 0.54),
            (6.0, 0.46),
            (10.0, 0.3),
        ];
        // Between 54% at 4 µs and 46% at 6 µs: a request takes 1/0.54 =
        // 1.852, 2 and 1/0.46 = 2.174 times native's time, so 50% is 46%
        // of the way, at 4.92 µs.
        let at = |share| added_work_at(&curve, share).unwrap();
        assert!((at(0.5) - 4.92).abs() < 0.005, "{}", at(0.5));
        assert!((at(0.7) - 2.0).abs() < 1e-9, "{}", at(0.7));
        assert!(at(1.0).abs() < 1e-9, "{}", at(1.0));
        assert_eq!(describe_budget(&curve, 0.5), "about 4.9 µs");
        // A flat step (noise) gives its first end.
        let flat = [(0.0, 1.0), (2.0, 0.6), (4.0, 0.6), (6.0, 0.4)];
        assert_eq!(added_work_at(&flat, 0.6), Some(2.0));
        // Slower than the slowest step: past the curve's end.
        assert_eq!(added_work_at(&curve, 0.19), None);
        assert_eq!(describe_budget(&curve, 0.19), "more than 10 µs");
        // Noise can put a step above native: no crossing, and not past
        // the end either.
        let noisy = [(0.0, 1.0), (2.0, 1.05)];
        assert_eq!(
            describe_budget(&noisy, 1.02),
            "no figure (the measured steps do not fall through this share)"
        );
    }
}
