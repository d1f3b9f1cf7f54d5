#!/usr/bin/env python3
"""Fits SAWB's clip coefficients (c1, c2) per (grid, bits) and writes src/quant/sawb_coefficients.inc.

Usage: fit_sawb.py [--check]      (--check: verify only, do not write the .inc file)

Method (baselines.md §2.3):
  1. For each unit-variance distribution (Gaussian, Laplace, uniform, logistic, Student-t with
     nu = 3, 5, 10) and each grid (mid-tread: 2^b - 1 levels with 0; mid-rise: 2^b levels, no 0)
     find the MSE-optimal clip alpha* of the symmetric uniform quantizer whose outermost level is
     alpha: coarse scan, then golden-section search on the MSE.
  2. The MSE is integrated numerically: Gauss-Legendre on every quantization cell (the quantizer is
     constant there, so the integrand is smooth) and on the tail |w| > alpha after mapping
     [alpha, inf) onto [0, 1).
  3. Least squares alpha*/sigma = c1 - c2 * r over the distributions, r = E|w| / sqrt(E w^2),
     each distribution weighted by MSE''(alpha*) / MSE(alpha*). A squared clip error then counts
     as what it costs in relative MSE; the unweighted fit lets the sharp uniform optimum miss by up
     to 16 % MSE at 4 bits (both fits are printed).
Checks (asserted): alpha* reproduces the §2.2 table to +-0.01 (Gaussian, Laplace, uniform at
2, 3, 4, 8 bits; except SPEC_ERRATA, which are printed with the closed-form evidence), the Laplace
alpha* equals the closed-form optimum, and MSE(alpha_sawb) / MSE(alpha*) <= 1.03 for b in {2, 3, 4}.
Only python3 and numpy; runs in a few seconds.
"""
import math
import pathlib
import sys

import numpy as np

OUT = pathlib.Path(__file__).resolve().parent.parent / "src" / "quant" / "sawb_coefficients.inc"
FIT_BITS = (2, 3, 4)
TABLE_BITS = (2, 3, 4, 8)
GRIDS = ("mid_tread", "mid_rise")
MAX_RATIO = 1.03

# baselines.md §2.2, alpha*/sigma (MSE-optimal).
SPEC_TABLE = {
    ("gaussian", "mid_tread"): (1.224, 1.952, 2.474, 3.921),
    ("gaussian", "mid_rise"): (1.493, 2.051, 2.514, 3.922),
    ("laplace", "mid_tread"): (1.414, 2.465, 3.408, 7.001),
    ("laplace", "mid_rise"): (1.631, 2.558, 3.458, 7.051),
    ("uniform", "mid_tread"): (1.155, 1.485, 1.617, 1.725),
    ("uniform", "mid_rise"): (1.299, 1.516, 1.624, 1.725),
}
# Cells of the §2.2 table that this script does not reproduce to +-0.01. The exact Laplace MSE (from
# closed-form partial moments, laplace_mse_closed_form) confirms the values computed here; the MSE
# curve is so flat at 8 bits that the spec's values cost < 0.1 % MSE. Printed, not hidden.
SPEC_ERRATA = {("laplace", "mid_tread", 8), ("laplace", "mid_rise", 8)}

GL_X, GL_W = np.polynomial.legendre.leggauss(24)


class Dist:
    """A symmetric unit-variance density: pdf(w) for w >= 0, support [-hi, hi], closed-form r."""

    def __init__(self, name, pdf, hi, r):
        self.name, self.pdf, self.hi, self.r = name, pdf, hi, r


def student_t(nu):
    scale = math.sqrt((nu - 2) / nu)  # t_nu has variance nu / (nu - 2)
    lognorm = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)

    def pdf(w):
        t = w / scale
        return np.exp(lognorm - (nu + 1) / 2 * np.log1p(t * t / nu)) / scale

    e_abs_t = 2 * math.sqrt(nu) * math.exp(lognorm + 0.5 * math.log(nu * math.pi)) / (
        math.sqrt(math.pi) * (nu - 1))
    return Dist(f"student_t{nu}", pdf, math.inf, e_abs_t * scale)


def distributions():
    b = 1 / math.sqrt(2)  # Laplace scale
    s = math.sqrt(3) / math.pi  # logistic scale
    h = math.sqrt(3)  # uniform half-width

    def logistic(w):
        e = np.exp(-np.abs(w) / s)
        return e / (s * (1 + e) ** 2)

    return [
        Dist("gaussian", lambda w: np.exp(-0.5 * w * w) / math.sqrt(2 * math.pi), math.inf,
             math.sqrt(2 / math.pi)),
        Dist("laplace", lambda w: np.exp(-np.abs(w) / b) / (2 * b), math.inf, b),
        Dist("uniform", lambda w: np.full_like(w, 1 / (2 * h)), h, h / 2),
        Dist("logistic", logistic, math.inf, 2 * s * math.log(2)),
        student_t(3),
        student_t(5),
        student_t(10),
    ]


def positive_levels(alpha, bits, grid):
    """The non-negative levels of the grid with outermost level alpha."""
    if grid == "mid_tread":
        ls = 2 ** (bits - 1) - 1
        return alpha * np.arange(0, ls + 1) / ls
    lu = 2 ** bits - 1
    return alpha * (2 * np.arange(2 ** (bits - 1), lu + 1) / lu - 1)


def integrate(f, a, b):
    """Gauss-Legendre of f on each interval [a_i, b_i] (arrays); returns the total."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    half = 0.5 * (b - a)
    x = (0.5 * (a + b))[:, None] + half[:, None] * GL_X[None, :]
    return float(np.sum(half[:, None] * GL_W[None, :] * f(x)))


def mse(dist, alpha, bits, grid):
    """E[(Q(w) - w)^2] for the symmetric quantizer clipping at alpha (twice the w >= 0 half)."""
    lev = positive_levels(alpha, bits, grid)
    lo = np.concatenate(([0.0], 0.5 * (lev[:-1] + lev[1:])))  # decision thresholds
    hi = np.concatenate((lo[1:], [alpha]))
    # Cut every cell at the support edge (uniform) and split it in 4 for accuracy.
    lo, hi = np.minimum(lo, dist.hi), np.minimum(hi, dist.hi)
    k = 4
    t = np.linspace(0, 1, k + 1)
    a = (lo[:, None] + (hi - lo)[:, None] * t[None, :-1]).ravel()
    b = (lo[:, None] + (hi - lo)[:, None] * t[None, 1:]).ravel()
    level = np.repeat(lev, k)[:, None]
    inner = integrate(lambda x: (x - level) ** 2 * dist.pdf(x), a, b)
    # Tail |w| > alpha, quantized to alpha.
    if dist.hi <= alpha:
        tail = 0.0
    elif math.isfinite(dist.hi):
        tail = integrate(lambda w: (w - alpha) ** 2 * dist.pdf(w), [alpha], [dist.hi])
    else:
        # w = alpha + u / (1 - u), u in [0, 1); 64 panels (the t_3 tail decays like w^-2).
        edges = np.linspace(0, 1, 65)

        def g(u):
            d = u / (1 - u)
            return d * d * dist.pdf(alpha + d) / (1 - u) ** 2

        tail = integrate(g, edges[:-1], edges[1:])
    return 2 * (inner + tail)


def minimize(f, top):
    """argmin of f on (0, top): scan with step 0.05, then golden-section around the best point."""
    scan = np.arange(0.05, top, 0.05)
    i = int(np.argmin([f(a) for a in scan]))
    lo, hi = scan[max(i - 1, 0)], scan[min(i + 1, len(scan) - 1)]
    phi = (math.sqrt(5) - 1) / 2
    c, d = hi - phi * (hi - lo), lo + phi * (hi - lo)
    fc, fd = f(c), f(d)
    while hi - lo > 1e-9:
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - phi * (hi - lo)
            fc = f(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + phi * (hi - lo)
            fd = f(d)
    a = 0.5 * (lo + hi)
    return a, f(a)


def optimal_clip(dist, bits, grid):
    """(alpha*, MSE(alpha*)) for one distribution and grid."""
    top = dist.hi * 1.2 if math.isfinite(dist.hi) else 60.0
    return minimize(lambda a: mse(dist, a, bits, grid), top)


def laplace_mse_closed_form(alpha, bits, grid):
    """Independent check of the integrator: the Laplace MSE from exponential partial moments."""
    b = 1 / math.sqrt(2)
    lev = positive_levels(alpha, bits, grid)
    edges = np.concatenate(([0.0], 0.5 * (lev[:-1] + lev[1:]), [math.inf]))
    total = 0.0
    for lo, hi, level in zip(edges[:-1], edges[1:], lev):
        # antiderivative of (w - level)^2 exp(-w/b) / (2b)
        def prim(w):
            if math.isinf(w):
                return 0.0
            u = w - level
            return -math.exp(-w / b) * (u * u + 2 * b * u + 2 * b * b) / 2

        total += prim(hi) - prim(lo)
    return 2 * total


def check_moments(dist):
    """The closed-form r and unit variance against the numerical integral of the density."""
    if math.isfinite(dist.hi):
        m = lambda p: 2 * integrate(lambda w: w ** p * dist.pdf(w), [0.0], [dist.hi])
    else:
        edges = np.linspace(0, 1, 257)
        m = lambda p: 2 * integrate(
            lambda u: (u / (1 - u)) ** p * dist.pdf(u / (1 - u)) / (1 - u) ** 2, edges[:-1],
            edges[1:])
    assert abs(m(0) - 1) < 1e-6, (dist.name, m(0))
    assert abs(m(2) - 1) < 1e-6, (dist.name, m(2))
    assert abs(m(1) - dist.r) < 1e-6, (dist.name, m(1), dist.r)


def curvature(dist, alpha, best_mse, bits, grid):
    """MSE''(alpha*) / MSE(alpha*): the weight that makes a squared clip error cost what it costs
    in relative MSE (ratio - 1 ~ curvature / 2 * (alpha - alpha*)^2)."""
    h = 1e-3 * alpha
    m2 = mse(dist, alpha + h, bits, grid) + mse(dist, alpha - h, bits, grid) - 2 * best_mse
    return m2 / (h * h) / best_mse


def fit_line(r, y, w):
    """(c1, c2) minimising sum w_i (c1 - c2 r_i - y_i)^2."""
    sw = np.sqrt(w)
    (c1, minus_c2), *_ = np.linalg.lstsq(np.stack([sw, sw * r], 1), sw * y, rcond=None)
    return float(c1), float(-minus_c2)


def mse_ratio(dist, c1, c2, bits, grid, best):
    """MSE(alpha_sawb) / MSE(alpha*), alpha_sawb with the quantizer's fallback and max clamp."""
    a = c1 - c2 * dist.r
    a = min(a, dist.hi) if a > 0 else dist.hi
    if not math.isfinite(a):
        return math.inf
    return mse(dist, a, bits, grid) / best[dist.name, grid, bits][1]


def main():
    write = "--check" not in sys.argv[1:]
    dists = distributions()
    for d in dists:
        check_moments(d)
    failures, errata = [], []

    print("alpha*/sigma (MSE-optimal clip), r = E|w|/sqrt(E w^2)")
    best = {}
    for grid in GRIDS:
        print(f"\n[{grid}]")
        print(f"{'distribution':>13} {'r':>7} " + " ".join(f"{b:>2} bit" for b in TABLE_BITS))
        for d in dists:
            row = []
            for bits in TABLE_BITS:
                best[d.name, grid, bits] = optimal_clip(d, bits, grid)
                row.append(best[d.name, grid, bits][0])
            print(f"{d.name:>13} {d.r:7.4f} " + " ".join(f"{a:6.3f}" for a in row))
            spec = SPEC_TABLE.get((d.name, grid), ())
            for bits, want, got in zip(TABLE_BITS, spec, row):
                if (d.name, grid, bits) in SPEC_ERRATA:
                    errata.append((d, grid, bits, want, got))
                elif abs(got - want) > 0.01:
                    failures.append(f"alpha* {d.name} {grid} {bits} bit: {got:.4f}, spec {want}")
            if d.name == "laplace":
                for bits, got in zip(TABLE_BITS, row):
                    exact = minimize(lambda a: laplace_mse_closed_form(a, bits, grid), 15.0)[0]
                    if abs(got - exact) > 1e-4:
                        failures.append(f"Laplace {grid} {bits} bit: {got:.5f}, closed form {exact:.5f}")

    for d, grid, bits, want, got in errata:
        excess = mse(d, want, bits, grid) / best[d.name, grid, bits][1] - 1
        print(f"\nspec erratum: {d.name} {grid} {bits} bit alpha* = {got:.4f} (closed form agrees to "
              f"1e-4), §2.2 says {want}; the MSE there is only {100 * excess:.3f} % above the optimum")

    print("\nWeighted least-squares fit alpha*/sigma = c1 - c2 * r and MSE(alpha_sawb) / MSE(alpha*)")
    fits = {}
    for grid in GRIDS:
        for bits in FIT_BITS:
            r = np.array([d.r for d in dists])
            y = np.array([best[d.name, grid, bits][0] for d in dists])
            w = np.array([curvature(d, *best[d.name, grid, bits], bits, grid) for d in dists])
            plain = fit_line(r, y, np.ones_like(r))
            c1, c2 = fit_line(r, y, w)
            fits[grid, bits] = (c1, c2)
            ratios = [mse_ratio(d, c1, c2, bits, grid, best) for d in dists]
            plain_worst = max(mse_ratio(d, *plain, bits, grid, best) for d in dists)
            for d, q in zip(dists, ratios):
                if q > MAX_RATIO:
                    failures.append(f"MSE ratio {d.name} {grid} {bits} bit: {q:.4f}")
            print(f"{grid:>9} {bits} bit: c1 = {c1:.6f}, c2 = {c2:.6f}  (unweighted fit "
                  f"({plain[0]:.3f}, {plain[1]:.3f}) would give worst ratio {plain_worst:.4f})")
            print("     ratios " + " ".join(f"{d.name}={q:.4f}" for d, q in zip(dists, ratios)))

    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)

    if write:
        lines = [
            "// Generated by scripts/fit_sawb.py; do not edit by hand (re-run the script).",
            "// SAWB clip coefficients: alpha = c1 * sqrt(mean(w^2)) - c2 * mean(|w|), fitted to the",
            "// MSE-optimal clip of Gaussian, Laplace, uniform, logistic and Student-t (nu = 3, 5, 10)",
            "// unit-variance distributions by curvature-weighted least squares (baselines.md §2.3).",
            "// Rows: {grid, bits, c1, c2}.",
        ]
        names = {"mid_tread": "SawbGrid::kMidTread", "mid_rise": "SawbGrid::kMidRise"}
        for (grid, bits), (c1, c2) in fits.items():
            lines.append(f"{{{names[grid]}, {bits}, {c1:.6f}, {c2:.6f}}},")
        OUT.write_text("\n".join(lines) + "\n")
        print(f"\nwrote {OUT}")
    print("all checks passed")


if __name__ == "__main__":
    main()
