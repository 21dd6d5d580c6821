//! The engine's one root finder and one minimiser. Both work inside a
//! bracket their caller knows to hold the answer, so neither can wander off
//! to a point where the engine's functions mean nothing.
//! A leaf: it depends on nothing else in the engine.

/// The most probes a root search makes. Illinois converges superlinearly on
/// the engine's smooth functions, in a dozen probes or so; the cap is met
/// only where the tolerance is finer than the doubles around the root (the
/// bracket cannot shrink any more) or where `g` jumps, and bounds the work
/// there.
const MAX_PROBES: usize = 100;
/// The most steps of the golden-section search: 0.618^80 ≈ 2e-17 of the
/// interval, past its tolerance.
const MAX_GOLDEN_STEPS: usize = 80;

/// Where a root search stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Root {
    /// A root: g is 0 here, or the answer ([`Finish`]) from a bracket no
    /// wider than the tolerance (or, the probes spent, the last bracket's
    /// midpoint).
    Found(f64),
    /// g is NaN at this probe: it cannot say which side of the bracket the
    /// root is on, so the search stops and the caller decides what an
    /// undefined g means there.
    Undefined(f64),
}

/// What a search answers once its bracket is no wider than the tolerance.
/// The two callers have always answered differently, and their figures are
/// kept to the last bit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Finish {
    /// Where the chord between the bracket's ends crosses 0 (the midpoint
    /// where the chord gives no point inside): on a smooth g, closer to the
    /// root than the midpoint. The posterior's HPDI.
    Chord,
    /// The bracket's midpoint: within half the tolerance of the sign change
    /// whatever g does inside. The uplift's HPDI, whose g is the difference
    /// of two Newton solves and so not smooth on the tolerance's scale.
    Midpoint,
}

/// A root of `g` in [lo, hi], given `g_lo` = g(lo) < 0 < g(hi) = `g_hi`, by
/// the Illinois variant of regula falsi: each probe is where the chord
/// between the bracket's ends crosses 0, the bracket keeps the sign change,
/// and an end kept twice in a row has its value halved, so that neither end
/// sticks (plain regula falsi converges linearly then; Illinois
/// superlinearly). Where the chord gives no point strictly inside the
/// bracket (an infinite g at an end, a bracket of adjacent doubles) the
/// probe is the midpoint.
///
/// The search stops at the first probe x where g(x) is 0 or NaN, or, before
/// probing, once the bracket is no wider than `tolerance`: then it answers
/// as `finish` says, without spending a probe on a point it would answer
/// anyway. After [`MAX_PROBES`] probes it answers the last bracket's
/// midpoint. A bracket of width 0 is answered without a probe.
pub(super) fn find_root(
    g: impl Fn(f64) -> f64,
    mut lo: f64,
    mut hi: f64,
    mut g_lo: f64,
    mut g_hi: f64,
    tolerance: f64,
    finish: Finish,
) -> Root {
    // -1 when the last probe moved the lower end, 1 the upper, 0 at first.
    let mut side = 0;
    for _ in 0..MAX_PROBES {
        let x = (lo * g_hi - hi * g_lo) / (g_hi - g_lo);
        let x = if x > lo && x < hi { x } else { 0.5 * (lo + hi) };
        if hi - lo <= tolerance {
            return Root::Found(match finish {
                Finish::Chord => x,
                Finish::Midpoint => 0.5 * (lo + hi),
            });
        }
        let gx = g(x);
        if gx.is_nan() {
            return Root::Undefined(x);
        }
        if gx == 0.0 {
            return Root::Found(x);
        }
        if gx < 0.0 {
            (lo, g_lo) = (x, gx);
            if side == -1 {
                g_hi *= 0.5;
            }
            side = -1;
        } else {
            (hi, g_hi) = (x, gx);
            if side == 1 {
                g_lo *= 0.5;
            }
            side = 1;
        }
    }
    Root::Found(0.5 * (lo + hi))
}

/// Minimises a unimodal `f` on [lo, hi] by golden-section search, to 1e-9
/// of the interval, and returns the best of the last interval's ends and
/// midpoint (so a minimum at an end of [lo, hi] is found exactly).
pub(super) fn golden_min(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    const INV_PHI: f64 = 0.618_033_988_749_894_8;
    let mut x1 = hi - INV_PHI * (hi - lo);
    let mut x2 = lo + INV_PHI * (hi - lo);
    let (mut f1, mut f2) = (f(x1), f(x2));
    let tolerance = 1e-9 * (hi - lo).abs();
    for _ in 0..MAX_GOLDEN_STEPS {
        if (hi - lo).abs() <= tolerance {
            break;
        }
        if f1 <= f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - INV_PHI * (hi - lo);
            f1 = f(x1);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + INV_PHI * (hi - lo);
            f2 = f(x2);
        }
    }
    // The search may stop one step from an endpoint; compare with both ends.
    let mid = 0.5 * (lo + hi);
    [lo, mid, hi]
        .into_iter()
        .min_by(|a, b| f(*a).total_cmp(&f(*b)))
        .unwrap_or(mid)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// The root of `g` on [lo, hi] to `tolerance`, and how many probes it took.
    fn solve(g: impl Fn(f64) -> f64, lo: f64, hi: f64, tolerance: f64) -> (Root, usize) {
        solve_to(g, lo, hi, tolerance, Finish::Chord)
    }

    fn solve_to(
        g: impl Fn(f64) -> f64,
        lo: f64,
        hi: f64,
        tolerance: f64,
        finish: Finish,
    ) -> (Root, usize) {
        let probes = Cell::new(0);
        let counted = |x: f64| {
            probes.set(probes.get() + 1);
            g(x)
        };
        let root = find_root(counted, lo, hi, g(lo), g(hi), tolerance, finish);
        (root, probes.get())
    }

    fn found(root: Root) -> f64 {
        match root {
            Root::Found(x) => x,
            Root::Undefined(x) => panic!("g undefined at {x}"),
        }
    }

    #[test]
    fn a_steep_function_converges_in_few_probes() {
        // Nearly a step: the chord lands far from the root at first.
        let (root, probes) = solve(|x| (1e4 * (x - 0.3)).tanh(), 0.0, 1.0, 1e-12);
        assert!((found(root) - 0.3).abs() <= 1e-12, "{root:?}");
        assert!(probes < 60, "{probes} probes");
        // A cubic: convex on one side, concave on the other.
        let (root, probes) = solve(|x| x * x * x - 2.0, 0.0, 4.0, 1e-14);
        let want = 2f64.cbrt();
        assert!((found(root) - want).abs() <= 1e-14, "{root:?}");
        assert!(probes < 30, "{probes} probes");
    }

    #[test]
    fn a_flat_function_is_solved_to_the_tolerance() {
        // A slope of 1e-300: only the signs and ratios of g matter.
        let (root, _) = solve(|x| 1e-300 * (x - 0.7), 0.0, 1.0, 1e-12);
        assert!((found(root) - 0.7).abs() <= 1e-12, "{root:?}");
        // Flat at the root itself (a triple root): the probes creep up on
        // it from below while the upper end stays at 1, so the bracket never
        // narrows to the tolerance, and the probes spent, the answer is the
        // last bracket's midpoint, far from the root. Both searches this one
        // replaces answered so; the engine's g have a slope at their roots
        // (a difference of log densities at the interval's ends), and a
        // better answer here would be a change of figures of its own.
        let (root, probes) = solve(|x| (x - 0.25).powi(3), 0.0, 1.0, 1e-12);
        assert_eq!(probes, MAX_PROBES);
        assert!((found(root) - 0.625).abs() <= 1e-9, "{root:?}");
    }

    #[test]
    fn a_bracket_within_the_tolerance_answers_as_asked_without_a_probe() {
        // A straight line through 0 at 0.3, bracket [0, 1]: the chord finds
        // 0.3 at once; a tolerance of 2 is met before any probe.
        let line = |x: f64| x - 0.3;
        assert_eq!(
            solve_to(line, 0.0, 1.0, 2.0, Finish::Chord),
            (Root::Found(0.3), 0)
        );
        assert_eq!(
            solve_to(line, 0.0, 1.0, 2.0, Finish::Midpoint),
            (Root::Found(0.5), 0)
        );
        // Tighter: each probe of a steep g moves one end; the midpoint of
        // the last bracket is within half the tolerance of the root.
        let steep = |x: f64| (1e4 * (x - 0.3)).tanh();
        let (root, probes) = solve_to(steep, 0.0, 1.0, 1e-10, Finish::Midpoint);
        assert!((found(root) - 0.3).abs() <= 0.5e-10, "{root:?}");
        assert!((1..MAX_PROBES).contains(&probes), "{probes} probes");
    }

    #[test]
    fn a_jump_is_bracketed_to_the_tolerance() {
        // No root, a sign change: the search narrows onto the jump.
        let jump = 1.0 / 3.0;
        let step = |x: f64| if x < jump { -1.0 } else { 2.0 };
        let (root, probes) = solve(step, 0.0, 1.0, 1e-10);
        assert!((found(root) - jump).abs() <= 1e-10, "{root:?}");
        assert!(probes < MAX_PROBES, "{probes} probes");
    }

    #[test]
    fn an_infinite_end_is_bisected_past() {
        // g(0) = -inf and g(1) = +inf give no chord: the probe is the middle.
        let logit = |x: f64| x.ln() - (1.0 - x).ln();
        let (root, probes) = solve(logit, 0.0, 1.0, 1e-12);
        assert_eq!((root, probes), (Root::Found(0.5), 1));
    }

    #[test]
    fn nan_at_a_probe_stops_the_search_there() {
        let holed = |x: f64| {
            if (0.4..0.6).contains(&x) {
                f64::NAN
            } else {
                x - 0.5
            }
        };
        // The first chord from (0, -0.5) to (1, 0.5) crosses 0 at 0.5.
        assert_eq!(solve(holed, 0.0, 1.0, 1e-12), (Root::Undefined(0.5), 1));
    }

    #[test]
    fn a_bracket_of_width_0_is_its_own_root() {
        let (root, probes) = solve(|x| x - 0.1, 0.25, 0.25, 0.0);
        assert_eq!((root, probes), (Root::Found(0.25), 0));
        // Its g given by the caller, not evaluated: -1 and 1 there.
        assert_eq!(
            find_root(|_| 3.0, 0.25, 0.25, -1.0, 1.0, 1e-12, Finish::Chord),
            Root::Found(0.25)
        );
    }

    #[test]
    fn golden_section_finds_an_inner_minimum_and_an_end() {
        let x = golden_min(|x| (x - 0.3) * (x - 0.3), 0.0, 1.0);
        assert!((x - 0.3).abs() <= 1e-9, "{x}");
        // Rising or falling over the whole interval: the end, exactly.
        assert_eq!(golden_min(|x| x, 0.0, 1.0), 0.0);
        assert_eq!(golden_min(|x| -x, -2.0, 5.0), 5.0);
        // An interval of width 0.
        assert_eq!(golden_min(|x| x * x, 0.5, 0.5), 0.5);
    }
}
