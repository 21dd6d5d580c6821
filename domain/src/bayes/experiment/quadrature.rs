//! The shared quadrature of an experiment: every arm's normalised density
//! and CDF at the nodes of one composite Gauss–Legendre rule in logit space,
//! and each arm's density and CDF anywhere else from the Legendre series
//! through its nodes.
//!
//! The integrals run in logit space, where each density is smooth, over the
//! union of the arms' own windows (the regions `Posterior` found to hold
//! their mass), cut into pieces as narrow as the narrowest arm covering them
//! needs, and the gaps between windows cut too; an arm is evaluated only on
//! the pieces that meet its window. Each piece gets an n-point Gauss–Legendre
//! rule; a CDF inside a piece comes from integrating the density's
//! interpolating polynomial through the same nodes (a spectral integration
//! matrix), so no density is evaluated twice. Every arm is normalised by the
//! same quadrature, so an arm's density integrates to 1 exactly as used.

use std::cell::OnceCell;

use super::uplift_rule::{self, UpliftNode, UpliftRule};
use crate::bayes::gauss_legendre::{rule, NODES};
use crate::bayes::logit::{ln_sigmoid, sigmoid};
use crate::bayes::posterior::Kernel;
use crate::bayes::Posterior;
use crate::prior::Prior;

/// Pieces per arm window: each piece spans about half a posterior sd.
const PIECES_PER_WINDOW: usize = 8;
/// The widest piece in logit space, so that gaps between windows (where the
/// integrands follow the logistic p(1-p), with poles at distance π) and very
/// wide windows stay resolved.
const MAX_PIECE: f64 = 1.0;

/// Every arm's normalised logit-space density and CDF at the nodes of one
/// composite Gauss–Legendre rule, and what it takes to evaluate an arm's
/// density and CDF anywhere else (the uplift needs them at scaled points).
pub(super) struct Quadrature<'a> {
    /// The pieces' edges in logit space.
    pub(super) edges: Vec<f64>,
    /// The rule's weight at each node (the piece's half-width included).
    pub(super) weights: Vec<f64>,
    /// p = σ(t) at each node.
    pub(super) ps: Vec<f64>,
    /// ln p at each node.
    pub(super) ln_ps: Vec<f64>,
    /// 1 / half-width of each piece.
    pub(super) inverse_halves: Vec<f64>,
    pub(super) arms: Vec<ArmQuadrature<'a>>,
}

/// One arm on the shared nodes.
pub(super) struct ArmQuadrature<'a> {
    pub(super) kernel: Kernel<'a>,
    /// The kernel's largest value at the nodes: the density is
    /// exp(log kernel(t) − log_peak), normalised.
    pub(super) log_peak: f64,
    /// The arm's window: no mass outside.
    pub(super) lo: f64,
    pub(super) hi: f64,
    /// The pieces inside the window.
    pub(super) pieces: std::ops::Range<usize>,
    /// density[node], normalised so that Σ weights · density = 1.
    pub(super) density: Vec<f64>,
    /// cdf[node], P(p_arm <= p at the node).
    pub(super) cdf: Vec<f64>,
    /// before[piece], the CDF at the piece's left edge.
    pub(super) before: Vec<f64>,
    /// The Legendre series of the density and of its integral on each piece
    /// inside the window, made when first asked for.
    pub(super) series: OnceCell<Vec<Series>>,
    /// The arm's own coarser rule, for the uplift's integrals, made when
    /// first asked for.
    pub(super) uplift_rule: OnceCell<UpliftRule>,
}

/// An arm's CDF, logit-space density and the density's slope at one point.
#[derive(Clone, Copy, Default)]
pub(super) struct Point {
    pub(super) cdf: f64,
    pub(super) density: f64,
    pub(super) slope: f64,
}

/// An arm's density on one piece as a Legendre series in the piece's
/// coordinate x ∈ [-1, 1], and its integral from the piece's left edge.
pub(super) struct Series {
    density: [f64; NODES],
    integral: [f64; NODES + 1],
}

impl<'a> Quadrature<'a> {
    pub(super) fn over(arms: &[Posterior<'a>]) -> Self {
        let rule = rule();
        let windows: Vec<Window> = arms
            .iter()
            .map(|arm| {
                let (lo, hi, cells) = arm.logit_window();
                // A grid prior's density has a kink at every knot: as many
                // pieces as its posterior needed cells / 8.
                let pieces = match arm.prior() {
                    Prior::Grid { .. } => PIECES_PER_WINDOW.max(cells / 8),
                    _ => PIECES_PER_WINDOW,
                };
                Window {
                    lo,
                    hi,
                    width: (hi - lo) / pieces as f64,
                    // A step or grid prior's window can end where its support
                    // does, where the density jumps to 0.
                    hard: matches!(arm.prior(), Prior::Step { .. } | Prior::Grid { .. }),
                }
            })
            .collect();
        let edges = piece_edges(&windows);
        let pieces = edges.len() - 1;
        let nodes = pieces * NODES;
        let mut ts = Vec::with_capacity(nodes);
        let mut weights = Vec::with_capacity(nodes);
        for piece in edges.windows(2) {
            let (mid, half) = (0.5 * (piece[0] + piece[1]), 0.5 * (piece[1] - piece[0]));
            for (x, w) in rule.nodes.iter().zip(&rule.weights) {
                ts.push(mid + half * x);
                weights.push(half * w);
            }
        }
        let ps = ts.iter().map(|t| sigmoid(*t)).collect();
        let ln_ps = ts.iter().map(|t| ln_sigmoid(*t)).collect();
        let inverse_halves = edges.windows(2).map(|e| 2.0 / (e[1] - e[0])).collect();
        let arms = arms
            .iter()
            .zip(&windows)
            .map(|(arm, window)| ArmQuadrature::new(arm.kernel(), window, &edges, &ts, &weights))
            .collect();
        Quadrature {
            edges,
            weights,
            ps,
            ln_ps,
            inverse_halves,
            arms,
        }
    }

    /// (mean, variance, third central moment) of ln p for arm `arm`, over
    /// its nodes.
    pub(super) fn log_moments(&self, arm: usize) -> (f64, f64, f64) {
        let q = &self.arms[arm];
        let nodes = q.pieces.start * NODES..q.pieces.end * NODES;
        let mass = |n: usize| self.weights[n] * q.density[n];
        let mean: f64 = nodes.clone().map(|n| mass(n) * self.ln_ps[n]).sum();
        let (mut var, mut third) = (0.0, 0.0);
        for n in nodes {
            let d = self.ln_ps[n] - mean;
            var += mass(n) * d * d;
            third += mass(n) * d * d * d;
        }
        (mean, var.max(0.0), third)
    }

    /// The Legendre series of arm `arm` on the pieces inside its window.
    pub(super) fn series(&self, arm: usize) -> &[Series] {
        let q = &self.arms[arm];
        q.series.get_or_init(|| {
            let rule = rule();
            q.pieces
                .clone()
                .map(|piece| {
                    let values = &q.density[piece * NODES..(piece + 1) * NODES];
                    let mut density = [0.0; NODES];
                    for (c, row) in density.iter_mut().zip(&rule.legendre) {
                        *c = row.iter().zip(values).map(|(l, v)| l * v).sum();
                    }
                    // ∫_{-1}^x P_0 = P_1 + P_0 and ∫_{-1}^x P_n = (P_{n+1} − P_{n−1})/(2n + 1).
                    let c = |n: usize| density.get(n).copied().unwrap_or(0.0);
                    let mut integral = [0.0; NODES + 1];
                    integral[0] = c(0) - c(1) / 3.0;
                    for (m, e) in integral.iter_mut().enumerate().skip(1) {
                        *e = c(m - 1) / (2 * m - 1) as f64 - c(m + 1) / (2 * m + 3) as f64;
                    }
                    Series { density, integral }
                })
                .collect()
        })
    }

    /// Arm `arm`'s CDF, logit-space density and its slope at `t`, from the
    /// Legendre series through its nodes (`series`, from [`Self::series`])
    /// on the piece holding `t`: the same
    /// polynomial the nodes' CDF integrates, so the two agree at the nodes.
    /// `cursor` is a piece to start looking from (the points of one integral
    /// come in increasing order).
    pub(super) fn point_in<const SLOPE: bool>(
        &self,
        arm: usize,
        series: &[Series],
        t: f64,
        cursor: &mut usize,
    ) -> Point {
        let q = &self.arms[arm];
        if t <= q.lo {
            return Point::default();
        }
        if t >= q.hi {
            return Point {
                cdf: 1.0,
                ..Point::default()
            };
        }
        let mut piece = (*cursor).clamp(q.pieces.start, q.pieces.end - 1);
        while piece > q.pieces.start && self.edges[piece] > t {
            piece -= 1;
        }
        while piece + 1 < q.pieces.end && self.edges[piece + 1] <= t {
            piece += 1;
        }
        *cursor = piece;
        let inverse_half = self.inverse_halves[piece];
        let x = ((t - self.edges[piece]) * inverse_half - 1.0).clamp(-1.0, 1.0);
        let series = &series[piece - q.pieces.start];
        let recurrence = &rule().recurrence;
        // P_n(x) by the three-term recurrence and P_n'(x) by
        // P'_{n+1} = P'_{n−1} + (2n + 1) P_n, summed as they come: step n
        // makes P_{n+1}, which the density's series has up to n + 1 = NODES − 1
        // and the integral's up to NODES.
        let (mut p0, mut p1) = (1.0, x);
        let (mut d0, mut d1) = (0.0, 1.0);
        let mut density = series.density[0] + series.density[1] * x;
        let mut slope = series.density[1];
        let mut integral = series.integral[0] + series.integral[1] * x;
        let steps = recurrence[1..NODES - 1]
            .iter()
            .zip(&series.density[2..])
            .zip(&series.integral[2..NODES]);
        for ((&(a, b, c), density_n), integral_n) in steps {
            let next = a * x * p1 - b * p0;
            if SLOPE {
                (d0, d1) = (d1, d0 + c * p1);
                slope += density_n * d1;
            }
            (p0, p1) = (p1, next);
            density += density_n * p1;
            integral += integral_n * p1;
        }
        let (a, b, _) = recurrence[NODES - 1];
        integral += series.integral[NODES] * (a * x * p1 - b * p0);
        Point {
            cdf: (q.before[piece] + integral / inverse_half).clamp(0.0, 1.0),
            density: density.max(0.0),
            slope: slope * inverse_half,
        }
    }
}

impl Quadrature<'_> {
    /// Arm `arm`'s own rule for the uplift ([`uplift_rule::build`]), made
    /// when first asked for.
    pub(super) fn uplift_rule(&self, arm: usize) -> &UpliftRule {
        let q = &self.arms[arm];
        q.uplift_rule
            .get_or_init(|| uplift_rule::build(&q.kernel, q.log_peak, q.lo, q.hi))
    }

    /// Arm `arm`'s uplift-rule nodes on [left, right], inside one piece of
    /// its rule, with masses on the same scale as the rule's.
    pub(super) fn uplift_nodes_on(&self, arm: usize, left: f64, right: f64) -> [UpliftNode; NODES] {
        let q = &self.arms[arm];
        let total = self.uplift_rule(arm).total;
        uplift_rule::nodes_on(&q.kernel, q.log_peak, total, left, right)
    }
}

impl<'a> ArmQuadrature<'a> {
    fn new(
        kernel: Kernel<'a>,
        window: &Window,
        edges: &[f64],
        ts: &[f64],
        weights: &[f64],
    ) -> Self {
        let rule = rule();
        let pieces = edges.len() - 1;
        let nodes = ts.len();
        // Outside its window an arm has no mass (none at all for a step
        // prior, below e^-36 otherwise). Its pieces are those that meet the
        // window; a hard window end is an edge, so none straddles it, and
        // past a soft one the kernel is still exact (and below e^-36).
        let first = edges
            .partition_point(|e| *e <= window.lo)
            .saturating_sub(1)
            .min(pieces - 1);
        let last = edges
            .partition_point(|e| *e < window.hi)
            .clamp(first + 1, pieces);
        let (lo, hi) = (edges[first], edges[last]);
        // Only the nodes of its own pieces are evaluated: elsewhere the
        // density is 0 and the CDF 0 before the window, 1 after it.
        let inside = first * NODES..last * NODES;
        let mut values = vec![0.0; nodes];
        for n in inside.clone() {
            values[n] = kernel.eval(ts[n]).log_t;
        }
        let log_peak = values[inside.clone()]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        for v in &mut values[inside.clone()] {
            *v = (*v - log_peak).exp();
        }
        let total: f64 = values[inside.clone()]
            .iter()
            .zip(&weights[inside.clone()])
            .map(|(v, w)| v * w)
            .sum();
        for v in &mut values[inside.clone()] {
            *v /= total;
        }
        // The CDF: whole pieces summed, and inside a piece the integral
        // of the density's interpolating polynomial up to each node.
        let mut cdf = vec![0.0; first * NODES];
        cdf.reserve(nodes - first * NODES);
        let mut before = vec![0.0; first];
        before.reserve(pieces + 1 - first);
        let mut sum = 0.0f64;
        for piece in first..last {
            before.push(sum);
            let start = piece * NODES;
            let half = weights[start] / rule.weights[0];
            let slice = &values[start..start + NODES];
            for row in &rule.integration {
                let part: f64 = row.iter().zip(slice).map(|(s, v)| s * v).sum();
                cdf.push((sum + half * part).clamp(0.0, 1.0));
            }
            sum += slice
                .iter()
                .zip(&weights[start..start + NODES])
                .map(|(v, w)| v * w)
                .sum::<f64>();
        }
        let sum = sum.clamp(0.0, 1.0);
        cdf.resize(nodes, sum);
        before.resize(pieces + 1, sum);
        ArmQuadrature {
            kernel,
            log_peak,
            lo,
            hi,
            pieces: first..last,
            density: values,
            cdf,
            before,
            series: OnceCell::new(),
            uplift_rule: OnceCell::new(),
        }
    }
}

/// An arm's window in logit space, the widest piece it needs, and whether
/// its ends must be edges.
struct Window {
    lo: f64,
    hi: f64,
    width: f64,
    hard: bool,
}

/// The edges of the pieces, from the leftmost window's start to the
/// rightmost's end: each piece as wide as the narrowest arm whose window
/// holds its left edge needs (its window cut into `PIECES_PER_WINDOW`, more
/// for a grid prior: as many as its posterior needed cells / 8), never wider
/// than `MAX_PIECE` nor than any arm whose window it meets, and never
/// stepping over a hard window end or far into a much narrower window. Where arms overlap, that costs the narrowest arm's
/// pieces, not the union of every arm's cuts; a soft window end (a density
/// down to e^-36) may fall inside a piece.
fn piece_edges(windows: &[Window]) -> Vec<f64> {
    let start = windows.iter().map(|w| w.lo).fold(f64::INFINITY, f64::min);
    let end = windows
        .iter()
        .map(|w| w.hi)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut edges = vec![start];
    let mut t = start;
    while t < end {
        let width = windows
            .iter()
            .filter(|w| w.lo <= t && t < w.hi)
            .fold(MAX_PIECE, |narrowest, w| narrowest.min(w.width));
        let mut next = t + width;
        for w in windows {
            // A window starting inside the piece: a much narrower one (the
            // next arm across a gap) starts a piece of its own; one of
            // about the same width only caps this piece's width, so that
            // arms starting a little apart do not leave slivers.
            if w.lo > t && w.lo < next {
                if w.hard || w.width < 0.5 * width {
                    next = w.lo;
                } else {
                    next = next.min(t + w.width);
                }
            }
            if w.hard && w.hi > t && w.hi < next {
                next = w.hi;
            }
        }
        // No sliver of a piece at the end.
        if next >= end - 1e-9 * width {
            next = end;
        }
        edges.push(next);
        t = next;
    }
    edges
}
