#!/usr/bin/python3
"""Reference values for Flightdeck's statistics package (internal/analysis/stats).

Run from this directory with Debian's Python and SciPy (python3-scipy, 1.10):

    /usr/bin/python3 generate.py

It writes fixtures.json, which the Go tests read; the Go tests do not need
Python. Every expected value is computed here without the Go code's
formulas where SciPy has the function itself (normal and t distributions,
Mann-Whitney U, Wilson interval, binomial likelihoods, numpy quantiles), and
where the quantity is a formula of the design (the mixture SPRT, the A/B
intervals, the sample size) it is written out again here and checked against
a second route before it is written: numerical integration for the mixture
likelihood ratio, root finding for the confidence sequence, Pearson's
chi-square for the z-test, a power search for the sample size and Welch's
t-test at the interval's bounds. A failed check stops the script. For the
SPRT it also computes the exact expected stopping time by dynamic
programming, against which the Go tests compare a simulation.
"""

import json
import math
import os
import warnings

import numpy as np
import scipy
from scipy import integrate, optimize, stats

RNG = np.random.default_rng(20260301)


def check(ok, what):
    if not ok:
        raise SystemExit("reference check failed: " + what)


def close(a, b, rel, abs_=0.0):
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_)


# Normal distribution ---------------------------------------------------------


def normal_cases():
    cdf = [{"z": z, "cdf": float(stats.norm.cdf(z))}
           for z in [-37.0, -30.0, -20.0, -10.0, -8.5, -5.0, -3.0, -2.326, -1.96, -1.0,
                     -0.5, -1e-8, 0.0, 1e-8, 0.3, 1.0, 1.6449, 2.5, 4.0, 8.0, 9.0]]
    probs = [1e-300, 1e-200, 1e-100, 1e-50, 1e-20, 1e-12, 1e-8, 1e-5, 1e-3, 0.005, 0.01,
             0.02425, 0.025, 0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.45, 0.49, 0.4999, 0.5001,
             0.6, 0.75, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999, 1 - 1e-6, 1 - 1e-10]
    ppf = [{"p": p, "quantile": float(stats.norm.ppf(p))} for p in probs]
    return {"cdf": cdf, "quantile": ppf}


# Student's t -----------------------------------------------------------------


def t_quantile(p, df):
    """Root of SciPy's t distribution function.

    scipy.stats.t.ppf (Cephes stdtri) is only accurate to about 1e-9, so the
    reference quantile is the root of t.logcdf in the tails and of t.cdf near
    the centre, where each keeps its relative precision.
    """
    if p > 0.5:
        return -t_quantile(1 - p, df)
    if p < 0.25:
        lp = math.log(p)

        def f(s):
            return stats.t.logcdf(-math.exp(s), df) - lp

        hi = 50.0
        while f(hi) > 0:
            hi *= 2
        return -math.exp(optimize.brentq(f, -60, hi, xtol=1e-300, rtol=1e-15, maxiter=500))
    return optimize.brentq(lambda t: stats.t.cdf(t, df) - p, -10, 0, xtol=1e-300, rtol=1e-15)


def t_cases():
    dfs = [1, 1.5, 2, 3, 4.7, 10, 29.3, 100, 1000, 1e4, 3e4, 99999, 1e5, 1e6, 1e8]
    cdf = []
    for df in dfs:
        for t in [-1e10, -1e3, -50, -10, -3, -1, -0.1, 0.5, 2, 10]:
            cdf.append({"t": t, "df": df, "cdf": float(stats.t.cdf(t, df))})
    quantile = []
    for df in dfs:
        for p in [1e-100, 1e-20, 1e-10, 1e-5, 1e-3, 0.025, 0.1, 0.3, 0.45, 0.49, 0.6, 0.975, 0.999]:
            if df < 3 and p < 1e-20:
                continue  # the quantile is beyond SciPy's bracket there
            q = t_quantile(p, df)
            check(close(float(stats.t.ppf(p, df)), q, 1e-8), f"t.ppf({p}, {df})")
            quantile.append({"p": p, "df": df, "quantile": q})
        if df >= 1000:
            # So far out t.ppf itself is off by up to 1e-4; only the root of
            # t.logcdf serves as reference.
            p = 1e-300
            q = t_quantile(p, df)
            quantile.append({"p": p, "df": df, "quantile": q})
    return {"cdf": cdf, "quantile": quantile}


# Mixture SPRT for error proportions ------------------------------------------


def msprt_log_lambda_quad(diff, v, tau, margin):
    """log Λ by integrating the normal likelihood ratio over the mixture."""
    sd = math.sqrt(v)

    def loglr(theta):
        return stats.norm.logpdf(diff, theta, sd) - stats.norm.logpdf(diff, margin, sd)

    # Shift by the integrand's peak so that large ratios do not overflow.
    post_mean = (diff * tau * tau + margin * v) / (v + tau * tau)
    post_sd = math.sqrt(v * tau * tau / (v + tau * tau))
    peak = loglr(post_mean) + stats.norm.logpdf(post_mean, margin, tau)

    def integrand(theta):
        return math.exp(loglr(theta) + stats.norm.logpdf(theta, margin, tau) - peak)

    lo, hi = post_mean - 40 * post_sd, post_mean + 40 * post_sd
    val, _ = integrate.quad(integrand, lo, hi, points=[post_mean], epsabs=0, epsrel=1e-12, limit=200)
    return peak + math.log(val)


def msprt_case(be, bn, ce, cn, alpha, tau, margin):
    pb = be / bn if bn else 0.0
    pc = ce / cn if cn else 0.0
    diff = pc - pb
    out = {"base_errors": be, "base_n": bn, "cand_errors": ce, "cand_n": cn,
           "alpha": alpha, "tau": tau, "margin": margin,
           "baseline_rate": pb, "candidate_rate": pc, "difference": diff}
    a = alpha if 0 < alpha < 1 else 0.01
    t = tau if tau > 0 else 0.02
    if bn == 0 or cn == 0:
        out.update(log_e_value=0.0, e_value=1.0, p_value=1.0, lower=-1.0, upper=1.0, significant=False)
        return out

    def adj_var(x, n):
        pt = (x + 1) / (n + 2)
        return pt * (1 - pt) / (n + 2)

    v = adj_var(be, bn) + adj_var(ce, cn)
    t2 = t * t

    def log_lambda(theta0):
        return 0.5 * math.log(v / (v + t2)) + t2 * (diff - theta0) ** 2 / (2 * v * (v + t2))

    ll = log_lambda(margin)
    if ll < 600:
        q = msprt_log_lambda_quad(diff, v, t, margin)
        check(close(ll, q, 1e-9, 1e-10), f"mixture integral {out}: {ll} vs {q}")
    # The confidence sequence is {θ₀ : Λ(θ₀) < 1/α}; find its ends by root
    # finding rather than by the closed-form half width.
    # Λ(θ̂) = √(V/(V+τ²)) < 1 < 1/α, so the sequence always contains θ̂.
    target = math.log(1 / a)
    step = 1.0
    while log_lambda(diff + step) < target:
        step *= 2
    upper = optimize.brentq(lambda th: log_lambda(th) - target, diff, diff + step, xtol=1e-15, rtol=1e-15)
    lower = optimize.brentq(lambda th: log_lambda(th) - target, diff - step, diff, xtol=1e-15, rtol=1e-15)
    p = min(1.0, math.exp(-ll))
    try:
        e = math.exp(ll)
    except OverflowError:
        e = float(np.finfo(float).max)
    out.update(log_e_value=ll, e_value=e,
               p_value=p, lower=max(-1.0, lower), upper=min(1.0, upper),
               significant=bool(p <= a and diff > margin))
    return out


def msprt_cases():
    cases = []
    counts = [(0, 0, 0, 0), (0, 100, 0, 0), (0, 0, 3, 10), (0, 1, 1, 1), (0, 10, 3, 3),
              (0, 1000, 0, 1000), (10, 1000, 10, 1000), (10, 1000, 50, 1000),
              (10, 1000, 30, 1000), (100, 10000, 8, 500), (100, 10000, 40, 500),
              (1000, 50000, 150, 5000), (500, 50000, 80, 5000), (1, 1000, 5, 100),
              (3, 300, 3, 30), (1000, 1000, 999, 1000), (200, 1000, 100, 1000),
              (50, 1000, 120, 1000), (5000, 100000, 700, 10000), (20, 20000, 60, 2000),
              (0, 100000, 1, 100), (40000, 2000000, 5000, 200000)]
    for be, bn, ce, cn in counts:
        for alpha, tau, margin in [(0.01, 0.02, 0.0), (0.05, 0.01, 0.0), (0.01, 0.02, 0.02),
                                   (0.001, 0.05, 0.0), (0.0, 0.0, 0.0)]:
            cases.append(msprt_case(be, bn, ce, cn, alpha, tau, margin))
    return cases


# Wald's SPRT -------------------------------------------------------------------


def sprt_exact_asn(p0, p1, alpha, beta, p, max_n=40000):
    """Exact expected stopping time of the SPRT when the true rate is p.

    A dynamic programme over (n, errors): the probability of being still
    undecided in each state, summed over n. It includes the overshoot that
    Wald's average sample number leaves out.
    """
    lower = math.log(beta / (1 - alpha))
    upper = math.log((1 - beta) / alpha)
    up = math.log(p1 / p0)
    down = math.log1p(-p1) - math.log1p(-p0)
    alive = {0: 1.0}  # errors -> probability, at step n
    expected = 0.0
    for n in range(0, max_n):
        expected += sum(alive.values())  # P(N > n)
        nxt = {}
        for x, pr in alive.items():
            for dx, q in ((1, p), (0, 1 - p)):
                y = x + dx
                llr = y * up + (n + 1 - y) * down
                if lower < llr < upper:
                    nxt[y] = nxt.get(y, 0.0) + pr * q
        alive = nxt
        if sum(alive.values()) < 1e-15:
            break
    return expected


def sprt_cases():
    cases = []
    for p0, p1, alpha, beta in [(0.01, 0.05, 0.01, 0.01), (0.03, 0.05, 0.01, 0.01),
                                (0.01, 0.03, 0.05, 0.1), (0.2, 0.1, 0.01, 0.05),
                                (0.001, 0.01, 0.01, 0.01)]:
        lower = math.log(beta / (1 - alpha))
        upper = math.log((1 - beta) / alpha)
        # E₀[z] = -KL(p0‖p1) and E₁[z] = KL(p1‖p0), from SciPy's entropy.
        d0 = -stats.entropy([p0, 1 - p0], [p1, 1 - p1])
        d1 = stats.entropy([p1, 1 - p1], [p0, 1 - p0])
        asn0 = ((1 - alpha) * lower + alpha * upper) / d0
        asn1 = (beta * lower + (1 - beta) * upper) / d1
        llr = []
        for x, n in [(0, 0), (0, 10), (1, 10), (3, 20), (5, 50), (2, 200), (10, 100), (25, 500), (60, 1000)]:
            v = float(stats.binom.logpmf(x, n, p1) - stats.binom.logpmf(x, n, p0))
            check(math.isfinite(v), f"binomial log likelihood ratio {x}/{n}")
            decision = 1 if v >= upper else (-1 if v <= lower else 0)
            llr.append({"errors": x, "n": n, "llr": v, "decision": decision})
        case = {"p0": p0, "p1": p1, "alpha": alpha, "beta": beta, "lower": lower, "upper": upper,
                "asn_h0": asn0, "asn_h1": asn1, "llr": llr}
        if (p0, p1) in [(0.01, 0.05), (0.03, 0.05)]:
            case["exact_asn_h0"] = sprt_exact_asn(p0, p1, alpha, beta, p0)
            case["exact_asn_h1"] = sprt_exact_asn(p0, p1, alpha, beta, p1)
        cases.append(case)
    return cases


# Mann-Whitney U and quantiles ----------------------------------------------------


def mwu_z(x, y, alternative):
    """Standardised statistic with tie and continuity corrections."""
    n1, n2 = len(x), len(y)
    ranks = stats.rankdata(np.concatenate([x, y]))
    u1 = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    u2 = n1 * n2 - u1
    u = {"greater": u1, "less": u2, "two-sided": max(u1, u2)}[alternative]
    _, t = np.unique(ranks, return_counts=True)
    n = n1 + n2
    s = math.sqrt(n1 * n2 / 12 * ((n + 1) - (t ** 3 - t).sum() / (n * (n - 1))))
    if s == 0:
        return 0.0
    return (u - n1 * n2 / 2 - 0.5) / s


def mwu_cases():
    samples = []
    samples.append(("shifted normal", RNG.normal(100, 10, 40), RNG.normal(105, 10, 35)))
    samples.append(("equal normal", RNG.normal(50, 5, 25), RNG.normal(50, 5, 30)))
    samples.append(("skewed latency", RNG.lognormal(4, 0.5, 60), RNG.lognormal(4.3, 0.5, 60)))
    samples.append(("rounded with ties", np.round(RNG.normal(10, 2, 50)), np.round(RNG.normal(11, 2, 45))))
    samples.append(("heavy ties", RNG.integers(0, 3, 30).astype(float), RNG.integers(0, 4, 30).astype(float)))
    samples.append(("one each", np.array([1.0]), np.array([2.0])))
    samples.append(("identical", np.array([5.0, 5.0, 5.0]), np.array([5.0, 5.0])))
    samples.append(("single tie", np.array([5.0]), np.array([5.0])))
    samples.append(("separated", np.arange(1.0, 11.0), np.arange(11.0, 21.0)))
    samples.append(("windows", RNG.gamma(9, 20, 12), RNG.gamma(9, 20, 12) * 1.6))
    samples.append(("large", RNG.normal(0, 1, 500), RNG.normal(0.1, 1, 700)))
    cases = []
    for name, x, y in samples:
        for alt in ["two-sided", "greater", "less"]:
            res = stats.mannwhitneyu(x, y, alternative=alt, method="asymptotic", use_continuity=True)
            z = mwu_z(x, y, alt)
            f = 2 if alt == "two-sided" else 1
            if z != 0:
                check(close(min(1.0, f * float(stats.norm.sf(z))), float(res.pvalue), 1e-12), f"mwu z {name}")
            cases.append({"name": name, "x": [float(v) for v in x], "y": [float(v) for v in y],
                          "alternative": alt, "u": float(res.statistic), "z": z,
                          "p_value": float(res.pvalue)})
    return cases


def quantile_cases():
    cases = []
    for values in [RNG.lognormal(4, 0.6, 37), RNG.normal(0, 1, 200), np.array([3.0]),
                   np.array([1.0, 2.0]), np.round(RNG.normal(100, 20, 101))]:
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]:
            cases.append({"values": [float(v) for v in values], "q": q,
                          "quantile": float(np.quantile(values, q))})
    return cases


# A/B test ------------------------------------------------------------------------


def sample_size(base, mde, sig, power):
    """Smallest n whose power reaches the target, found by search.

    The power of the two-sided test for n per arm is
    Φ((|p₂-p₁|·√n - z₁₋α/₂·√(2p̄q̄)) / √(p₁q₁+p₂q₂)), ignoring the far tail.
    """
    if not mde > 0:
        return 0
    p1 = min(1.0, max(0.0, base))
    p2 = p1 + mde
    if p2 > 1:
        p2 = p1 - mde
    if p2 < 0:
        return 0
    pbar = (p1 + p2) / 2
    za = stats.norm.isf(sig / 2)

    def pw(n):
        return stats.norm.cdf((mde * math.sqrt(n) - za * math.sqrt(2 * pbar * (1 - pbar)))
                              / math.sqrt(p1 * (1 - p1) + p2 * (1 - p2)))

    lo, hi = 0, 1
    while pw(hi) < power:
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pw(mid) >= power:
            hi = mid
        else:
            lo = mid
    n = hi
    # The closed form of the Go code, for the cross-check.
    zb = stats.norm.ppf(power)
    closed = math.ceil(((za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) / mde) ** 2)
    check(closed == n, f"sample size search {base} {mde}: {closed} vs {n}")
    return closed


def ab_case(ca, na, cb, nb, sig, mde, power):
    ra = ca / na if na else 0.0
    rb = cb / nb if nb else 0.0
    required = sample_size(ra, mde, sig, power)
    out = {"conv_a": ca, "n_a": na, "conv_b": cb, "n_b": nb, "significance": sig, "mde": mde,
           "power": power, "rate_a": ra, "rate_b": rb, "lift": rb - ra,
           "required_per_arm": required, "needed_per_arm": max(0, required - min(na, nb))}
    if na == 0 or nb == 0:
        out.update(z=0.0, p_value=1.0, lift_low=-1.0, lift_high=1.0, relative_lift=0.0,
                   relative_lift_low=-1.0, relative_lift_high=float(np.finfo(float).max), significant=False)
        return out
    pooled = (ca + cb) / (na + nb)
    se = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    if se > 0:
        z = (rb - ra) / se
        p = min(1.0, 2 * float(stats.norm.sf(abs(z))))
        chi2, p_chi, _, _ = stats.chi2_contingency([[ca, na - ca], [cb, nb - cb]], correction=False)
        check(close(z * z, chi2, 1e-9) and close(p, p_chi, 1e-9, 1e-300), f"z-test vs chi-square {out}")
    else:
        z, p = 0.0, 1.0
    zc = stats.norm.isf(sig / 2)
    ta, tb = na + 2, nb + 2
    pa, pb = (ca + 1) / ta, (cb + 1) / tb
    half = zc * math.sqrt(pa * (1 - pa) / ta + pb * (1 - pb) / tb)
    xa, xb, ka, kb = float(ca), float(cb), float(na), float(nb)
    if ca == 0 or cb == 0:
        xa, xb, ka, kb = xa + 0.5, xb + 0.5, ka + 1, kb + 1
    log_rr = math.log((xb / kb) / (xa / ka))
    spread = zc * math.sqrt(1 / xb - 1 / kb + 1 / xa - 1 / ka)
    rel = (rb - ra) / ra if ca > 0 and cb > 0 else math.expm1(log_rr)
    out.update(z=z, p_value=p, lift_low=max(-1.0, pb - pa - half), lift_high=min(1.0, pb - pa + half),
               relative_lift=rel, relative_lift_low=math.expm1(log_rr - spread),
               relative_lift_high=math.expm1(log_rr + spread), significant=bool(p <= sig))
    return out


def ab_cases():
    cases = []
    for ca, na, cb, nb in [(100, 1000, 120, 1000), (500, 10000, 560, 10000), (30, 1000, 31, 1000),
                           (0, 50, 0, 50), (0, 100, 5, 100), (5, 100, 0, 100), (0, 0, 5, 10),
                           (1000, 1000, 990, 1000), (2000, 20000, 2300, 19000), (1, 3, 2, 3),
                           (4500, 100000, 4700, 100000)]:
        for sig, mde, power in [(0.05, 0.01, 0.8), (0.01, 0.02, 0.9), (0.1, 0.005, 0.8), (0.05, 0.0, 0.8)]:
            cases.append(ab_case(ca, na, cb, nb, sig, mde, power))
    sizes = []
    for base, mde, sig, power in [(0.1, 0.01, 0.05, 0.8), (0.1, 0.02, 0.05, 0.8), (0.02, 0.005, 0.05, 0.9),
                                  (0.5, 0.05, 0.01, 0.95), (0.0, 0.01, 0.05, 0.8), (0.995, 0.01, 0.05, 0.8),
                                  (1.0, 0.02, 0.05, 0.8), (0.3, 0.001, 0.05, 0.8), (0.05, 0.0, 0.05, 0.8),
                                  (0.5, 0.6, 0.05, 0.8)]:
        sizes.append({"base_rate": base, "mde": mde, "significance": sig, "power": power,
                      "n": sample_size(base, mde, sig, power)})
    return cases, sizes


# Shadow: Wilson and Welch --------------------------------------------------------


def wilson_cases():
    cases = []
    for k, n in [(0, 1), (1, 1), (0, 50), (50, 50), (3, 1000), (17, 250), (500, 1000), (1, 100000),
                 (999, 1000), (12345, 67890)]:
        for conf in [0.9, 0.95, 0.99, 0.999]:
            with warnings.catch_warnings():
                # binomtest also computes a p-value, whose pmf divides by zero
                # for some small n; only the interval is used here.
                warnings.simplefilter("ignore", RuntimeWarning)
                ci = stats.binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
            cases.append({"successes": k, "n": n, "confidence": conf, "low": float(ci.low), "high": float(ci.high)})
    return cases


def welch_cases():
    cases = []
    for na, nb, sa, sb, shift in [(30, 30, 10, 10, 2), (12, 40, 5, 25, -3), (2, 2, 1, 3, 0.5),
                                  (1000, 50, 40, 90, 15), (5, 500, 1, 0.5, 0.0), (100000, 100000, 30, 31, 0.2),
                                  (3, 1000, 100, 1, 10)]:
        a = RNG.normal(100, sa, na)
        b = RNG.normal(100 + shift, sb, nb)
        ma, va, mb, vb = float(a.mean()), float(a.var(ddof=1)), float(b.mean()), float(b.var(ddof=1))
        for conf in [0.9, 0.95, 0.99]:
            x, y = va / na, vb / nb
            df = (x + y) ** 2 / (x * x / (na - 1) + y * y / (nb - 1))
            half = -t_quantile((1 - conf) / 2, df) * math.sqrt(x + y)
            diff = mb - ma
            # At each end of the interval Welch's t-test of that difference
            # has a two-sided p-value of exactly 1-confidence.
            for bound in (diff - half, diff + half):
                res = stats.ttest_ind_from_stats(mb, math.sqrt(vb), nb, ma + bound, math.sqrt(va), na, equal_var=False)
                check(close(float(res.pvalue), 1 - conf, 1e-8), f"welch bound p-value {res.pvalue} vs {1 - conf}")
            cases.append({"mean_a": ma, "var_a": va, "n_a": na, "mean_b": mb, "var_b": vb, "n_b": nb,
                          "confidence": conf, "df": df, "diff": diff, "low": diff - half, "high": diff + half})
    return cases


def main():
    ab, sizes = ab_cases()
    fixtures = {
        "generator": {"scipy": scipy.__version__, "numpy": np.__version__},
        "normal": normal_cases(),
        "student_t": t_cases(),
        "proportion_test": msprt_cases(),
        "sprt": sprt_cases(),
        "mann_whitney": mwu_cases(),
        "quantile": quantile_cases(),
        "ab_test": ab,
        "sample_size": sizes,
        "wilson": wilson_cases(),
        "welch": welch_cases(),
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures.json")
    with open(path, "w") as f:
        json.dump(fixtures, f, indent=1, allow_nan=False)
        f.write("\n")


if __name__ == "__main__":
    main()
