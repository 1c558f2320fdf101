"""Coverage study of ccalens's intervals on Gaussian populations whose similarity is known exactly.

Populations: ``(Zx, Zy)`` jointly Gaussian with ``Sxx = I``, ``Syy = I`` and ``Sxy = diag(rho)`` (prescribed
canonical correlations ``rho``: ``"regular"``, all ``min(p, q)`` of them from 0.9 down to 0.3; ``"half-null"``,
half of them from 0.9 down to 0.1 and the rest 0, the case of two networks sharing only part of their
information), then ``X = Zx Ax``, ``Y = Zy Ay`` with random invertible maps (CCA is invariant
to them; CKA and Procrustes are not, so their population values come from the covariances used:
``Sxx = Ax' Ax``, ``Syy = Ay' Ay``, ``Sxy = Ax' diag(rho) Ay``):

* CCA: ``mean(rho)`` over ``min(p, q)`` (zeros included);
* linear CKA: ``||Sxy||_F^2 / (||Sxx||_F ||Syy||_F)`` (debiased linear CKA estimates the same value);
* Procrustes: ``||Sxy||_* / sqrt(tr Sxx tr Syy)``;
* SVCCA: the mean canonical correlation between the population principal subspaces that SVCCA's default rule
  keeps (the fewest top eigenvectors of ``Sxx``, resp. ``Syy``, whose singular values ``sqrt(eigenvalue)`` reach
  99% of their sum), over the smaller kept count: the value the sample SVCCA converges to.

For every cell (n, p, q), measure and interval method: the estimate's bias, the coverage of the nominal 95%
interval and its mean width, for the default ``half_sampling`` and for ``basic``, ``percentile`` and ``bca`` (the
three from one with-replacement bootstrap). The few-block part: coverage against the number of blocks (the batches
of a stream), which sets ``FEW_BLOCKS``. The paired difference (``bootstrap_difference``) is checked on two pairs
sharing Y: coverage of the true difference and rejection rate when the two population similarities are equal. The
null part: rejection rates at 0.05 of ``permutation_test`` and ``cca_test`` (Wilks/Rao F, Bartlett) over null data
sets, KS tests of p-value uniformity, and ``cca_test`` against statsmodels ``CanCorr`` when it is installed.

    python -m validation.coverage_study --quick          # small cells, 100 data sets each (about 15 minutes)
    python -m validation.coverage_study --out validation/results   # the full grid (many hours on 2 cores)
"""

from __future__ import annotations

import argparse
import csv
import itertools
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

import ccalens
from ccalens.core.uncertainty.intervals import basic_bounds, percentile_bounds

MEASURES = ("cca", "svcca", "linear_cka", "debiased_linear_cka", "procrustes")
METHODS = ("half_sampling", "basic", "percentile", "bca")
KINDS = ("regular", "half-null")
FULL_N = (200, 1000, 5000)
FULL_PQ = ((10, 10), (50, 40), (200, 200))


@dataclass(frozen=True)
class Population:
    """A Gaussian population: canonical correlations ``rho: (s,)`` and maps ``Ax: (p, p)``, ``Ay: (q, q)``."""

    rho: np.ndarray
    Ax: np.ndarray
    Ay: np.ndarray

    @property
    def p(self) -> int:
        return int(self.Ax.shape[0])

    @property
    def q(self) -> int:
        return int(self.Ay.shape[0])

    def covariances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        D = np.zeros((self.p, self.q))
        D[np.arange(self.rho.size), np.arange(self.rho.size)] = self.rho
        return self.Ax.T @ self.Ax, self.Ay.T @ self.Ay, self.Ax.T @ D @ self.Ay

    def value(self, measure: str) -> float:
        """The population similarity."""
        Sxx, Syy, Sxy = self.covariances()
        if measure == "cca":
            return float(self.rho.sum() / min(self.p, self.q))
        if measure in ("linear_cka", "debiased_linear_cka"):
            return float(np.sum(Sxy**2) / (np.linalg.norm(Sxx) * np.linalg.norm(Syy)))
        if measure == "procrustes":
            return float(np.linalg.svd(Sxy, compute_uv=False).sum() / np.sqrt(np.trace(Sxx) * np.trace(Syy)))
        if measure == "svcca":
            (Ux, lx), (Uy, ly) = _kept_principal(Sxx), _kept_principal(Syy)
            between = (Ux.T @ Sxy @ Uy) / np.sqrt(np.outer(lx, ly))  # the kept coordinates, each of unit variance
            return float(np.linalg.svd(between, compute_uv=False).mean())
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``X: (n, p)``, ``Y: (n, q)``."""
        s = self.rho.size
        Zx = rng.standard_normal((n, self.p))
        Zy = rng.standard_normal((n, self.q))
        Zy[:, :s] = Zx[:, :s] * self.rho + Zy[:, :s] * np.sqrt(1.0 - self.rho**2)
        return Zx @ self.Ax, Zy @ self.Ay


def _kept_principal(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The principal directions ``U: (d, k)`` of a covariance ``S: (d, d)`` that SVCCA's default rule keeps, with
    their variances ``(k,)``: the rule applied to ``sqrt(eigenvalue)``, which the centred data's singular values
    estimate up to the common factor ``sqrt(n - 1)``."""
    from ccalens.core.validation import DEFAULT_SVCCA_RULE

    eigenvalues, U = np.linalg.eigh(S)
    eigenvalues, U = eigenvalues[::-1], U[:, ::-1]
    weights = DEFAULT_SVCCA_RULE.weights(np.sqrt(np.clip(eigenvalues, 0.0, None)))
    k = DEFAULT_SVCCA_RULE.count(weights, float(weights.sum()))
    return U[:, :k], eigenvalues[:k]


def population(p: int, q: int, rng: np.random.Generator, kind: str = "half-null") -> Population:
    """Canonical correlations of ``kind`` (``"regular"``: 0.9 down to 0.3 over all ``min(p, q)`` directions;
    ``"half-null"``: 0.9 down to 0.1 over ``min(p, q) // 2``, the rest 0), random well-conditioned maps
    (Gaussian with a unit diagonal shift)."""
    if kind == "regular":
        rho = np.linspace(0.9, 0.3, min(p, q))
    elif kind == "half-null":
        rho = np.linspace(0.9, 0.1, max(1, min(p, q) // 2))
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def mapping(d: int) -> np.ndarray:
        return np.eye(d) + rng.standard_normal((d, d)) / np.sqrt(d)

    return Population(rho, mapping(p), mapping(q))


def intervals(boot: Any, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """The three methods' intervals from one bootstrap (called with method="bca")."""
    reps = boot.bootstrap_distribution
    est = np.asarray(boot.estimate)
    out = {"bca": (boot.confidence_interval.low, boot.confidence_interval.high)}
    lo, hi = basic_bounds(reps, est, level)
    out["basic"] = (float(np.clip(lo, 0, 1)), float(np.clip(hi, 0, 1)))
    lo, hi = percentile_bounds(reps, level)
    out["percentile"] = (float(lo), float(hi))
    return out


def coverage_cell(n: int, p: int, q: int, reps: int, *, n_resamples: int = 200, seed: int = 0,
                  measures: tuple[str, ...] = MEASURES, kind: str = "half-null",
                  methods: tuple[str, ...] = METHODS) -> list[dict[str, Any]]:
    """Rows ``(n, p, q, kind, measure, method, population, bias, coverage, width, reps)`` for one cell."""
    rng = np.random.default_rng(seed)
    pop = population(p, q, rng, kind)
    truth = {m: pop.value(m) for m in measures}
    est = {m: [] for m in measures}
    hit: dict[tuple[str, str], list[bool]] = {(m, k): [] for m in measures for k in methods}
    width: dict[tuple[str, str], list[float]] = {(m, k): [] for m in measures for k in methods}
    bc: dict[str, list[float]] = {m: [] for m in measures}
    resampled = [k for k in methods if k != "half_sampling"]
    for r in range(reps):
        X, Y = pop.sample(n, rng)
        for m in measures:
            found: dict[str, tuple[float, float]] = {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if "half_sampling" in methods:
                    half = ccalens.bootstrap(X, Y, m, n_resamples=n_resamples, seed=seed * 100003 + r)
                    found["half_sampling"] = half.confidence_interval
                    bc[m].append(half.bias_corrected)
                if resampled:
                    boot = ccalens.bootstrap(X, Y, m, n_resamples=n_resamples, method="bca", seed=seed * 100003 + r)
                    found.update(intervals(boot))
            est[m].append(ccalens.MEASURES[m](X, Y).score)
            for k in methods:
                lo, hi = found[k]
                hit[m, k].append(lo <= truth[m] <= hi)
                width[m, k].append(hi - lo)
    rows = []
    for m in measures:
        for k in methods:
            rows.append({"n": n, "p": p, "q": q, "kind": kind, "measure": m, "method": k, "population": truth[m],
                         "bias": float(np.mean(est[m]) - truth[m]), "sd_estimate": float(np.std(est[m])),
                         "bias_corrected_bias": float(np.mean(bc[m]) - truth[m]) if bc[m] else float("nan"),
                         "coverage": float(np.mean(hit[m, k])), "width": float(np.mean(width[m, k])), "reps": reps,
                         "in_scope": p + q <= n / 10})  # ranks: p and q (full column rank)
    return rows


def few_blocks_cell(n: int, p: int, q: int, reps: int, blocks: tuple[int, ...], *, n_resamples: int = 200,
                    seed: int = 0, measure: str = "linear_cka") -> list[dict[str, Any]]:
    """Coverage of the half-sampling and basic intervals when the data come in ``B`` blocks (a stream of B
    batches), for each B in ``blocks``: rows ``(n, p, q, measure, method, blocks, coverage, width, reps)``."""
    rng = np.random.default_rng(seed)
    pop = population(p, q, rng, "regular")
    truth = pop.value(measure)
    rows = []
    for B in blocks:
        hits: dict[str, list[bool]] = {"half_sampling": [], "basic": []}
        widths: dict[str, list[float]] = {"half_sampling": [], "basic": []}
        for r in range(reps):
            X, Y = pop.sample(n, rng)
            for method in hits:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = ccalens.bootstrap(X, Y, measure, n_resamples=n_resamples, method=method,
                                            block_size=-(-n // B), seed=r)
                lo, hi = res.confidence_interval
                hits[method].append(lo <= truth <= hi)
                widths[method].append(hi - lo)
        for method in hits:
            rows.append({"n": n, "p": p, "q": q, "measure": measure, "method": method, "blocks": B,
                         "coverage": float(np.mean(hits[method])), "width": float(np.mean(widths[method])),
                         "reps": reps})
    return rows


def difference_cell(n: int, q: int, reps: int, *, equal: bool, n_resamples: int = 200, seed: int = 0) -> dict[str, Any]:
    """Paired CCA difference of ``(X1, Y)`` and ``(X2, Y)``, ``X_k = Y rho_k + noise``: coverage, rejection rate."""
    rng = np.random.default_rng(seed)
    rho1 = np.linspace(0.8, 0.3, q)
    rho2 = rho1[::-1].copy() if equal else rho1 - 0.1
    truth = float(rho1.mean() - rho2.mean())
    hits, rejections = [], []
    for r in range(reps):
        Y = rng.standard_normal((n, q))
        X1 = Y * rho1 + rng.standard_normal((n, q)) * np.sqrt(1 - rho1**2)
        X2 = Y * rho2 + rng.standard_normal((n, q)) * np.sqrt(1 - rho2**2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = ccalens.bootstrap_difference((X1, Y), (X2, Y), "cca", n_resamples=n_resamples, seed=r)
        lo, hi = res.confidence_interval
        hits.append(lo <= truth <= hi)
        rejections.append(res.pvalue <= 0.05)
    return {"n": n, "q": q, "equal": equal, "truth": truth, "coverage": float(np.mean(hits)),
            "rejection_rate": float(np.mean(rejections)), "reps": reps}


def null_study(n: int, p: int, q: int, datasets: int, *, n_permutations: int = 199, seed: int = 0) -> dict[str, Any]:
    """Rejection rates at 0.05 and KS p-values of uniformity on ``datasets`` null data sets (X, Y independent)."""
    rng = np.random.default_rng(seed)
    perm, wilks, bart, diffs = [], [], [], []
    try:
        from statsmodels.multivariate.cancorr import CanCorr
    except ImportError:  # pragma: no cover
        CanCorr = None
    for k in range(datasets):
        X = rng.standard_normal((n, p))
        Y = rng.standard_normal((n, q))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            perm.append(ccalens.permutation_test(X, Y, "cca", n_permutations=n_permutations, seed=k).pvalue)
            t = ccalens.cca_test(X, Y)
        wilks.append(float(t.pvalue_f[0]))
        bart.append(float(t.pvalue_chi2[0]))
        if CanCorr is not None:
            ref = CanCorr(Y, X).corr_test().stats
            diffs.append(abs(float(ref["Pr > F"].iloc[0]) - wilks[-1]))
    out: dict[str, Any] = {"n": n, "p": p, "q": q, "datasets": datasets}
    for name, pv in (("permutation", perm), ("wilks_rao_f", wilks), ("bartlett", bart)):
        pv = np.asarray(pv)
        out[f"{name}_rejection"] = float(np.mean(pv <= 0.05))
        out[f"{name}_ks_pvalue"] = float(scipy.stats.kstest(pv, "uniform").pvalue)
    out["statsmodels_max_abs_diff_wilks_p"] = float(max(diffs)) if diffs else None
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    """One line per (cell, measure): bias (sd) of the estimate, bias of the default interval's centre (the
    bias-corrected estimate) and the coverage (width) of each method."""
    methods = [k for k in METHODS if any(r["method"] == k for r in rows)]
    lines = ["| n | p x q | population | measure | bias (sd) | default's centre bias | "
             + " | ".join(f"{k} coverage (width)" for k in methods) + " |", "|" + "---|" * (6 + len(methods))]
    key = lambda r: (r["n"], r["p"], r["q"], r["kind"], r["measure"])  # noqa: E731
    for cell, group in itertools.groupby(sorted(rows, key=key), key=key):
        by = {r["method"]: r for r in group}
        first = next(iter(by.values()))
        mark = "" if first["in_scope"] else " (p + q > n / 10)"
        lines.append(f"| {cell[0]} | {cell[1]} x {cell[2]}{mark} | {cell[3]} | {cell[4]} | "
                     f"{first['bias']:+.4f} ({first['sd_estimate']:.4f}) | {first['bias_corrected_bias']:+.4f} | "
                     + " | ".join(f"{by[k]['coverage']:.3f} ({by[k]['width']:.3f})" for k in methods) + " |")
    return "\n".join(lines) + "\n"


def few_blocks_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| n | p x q | measure | blocks | half_sampling coverage | basic coverage | reps |", "|" + "---|" * 7]
    for B in sorted({r["blocks"] for r in rows}):
        by = {r["method"]: r for r in rows if r["blocks"] == B}
        r = by["half_sampling"]
        lines.append(f"| {r['n']} | {r['p']} x {r['q']} | {r['measure']} | {B} | {r['coverage']:.3f} | "
                     f"{by['basic']['coverage']:.3f} | {r['reps']} |")
    return "\n".join(lines) + "\n"


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    """Coverage of each method per cell, one panel per measure, the 95% +/- 3 points band shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measures = [m for m in MEASURES if any(r["measure"] == m for r in rows)]
    methods = [k for k in METHODS if any(r["method"] == k for r in rows)]
    cells = sorted({(r["n"], r["p"], r["q"], r["kind"]) for r in rows})
    fig, axes = plt.subplots(1, len(measures), figsize=(3.6 * len(measures), 3.6), sharey=True, squeeze=False)
    for ax, m in zip(axes[0], measures, strict=True):
        for offset, k in enumerate(methods):
            cov = [next(r["coverage"] for r in rows if (r["n"], r["p"], r["q"], r["kind"]) == c
                        and r["measure"] == m and r["method"] == k) for c in cells]
            ax.plot(np.arange(len(cells)) + 0.1 * offset, cov, "o", ms=4, label=k)
        ax.axhspan(0.92, 0.98, color="0.9", zorder=0)
        ax.axhline(0.95, color="0.5", lw=0.8)
        ax.set_ylim(0, 1.02)
        ax.set_xticks(range(len(cells)), [f"n={n}\n{p}x{q}\n{kind}" for n, p, q, kind in cells], fontsize=6)
        ax.set_title(m, fontsize=9)
    axes[0][0].set_ylabel("coverage of the nominal 95% interval")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="coverage of ccalens's intervals on known populations")
    parser.add_argument("--quick", action="store_true", help="small cells, 100 data sets each")
    parser.add_argument("--reps", type=int, default=None, help="data sets per cell (default 500; quick 100)")
    parser.add_argument("--null-datasets", type=int, default=1000)
    parser.add_argument("--n-resamples", type=int, default=200)
    parser.add_argument("--cells", default="", help="n:p:q,... (default: the full grid, or the quick cells)")
    parser.add_argument("--skip", default="", help="parts to skip: comma-separated of coverage,blocks,paired,null")
    parser.add_argument("--measures", default=",".join(MEASURES), help="comma-separated, of " + ",".join(MEASURES))
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of " + ",".join(METHODS))
    parser.add_argument("--out", type=Path, default=Path("validation/results"))
    args = parser.parse_args(argv)
    measures, methods = tuple(args.measures.split(",")), tuple(args.methods.split(","))
    for name, chosen, allowed in (("--measures", measures, MEASURES), ("--methods", methods, METHODS)):
        if not set(chosen) <= set(allowed):
            parser.error(f"{name} must be comma-separated names of {', '.join(allowed)}, got {','.join(chosen)}")
    # the study draws small samples on purpose: the measures' small-sample advice would repeat once per data set
    warnings.filterwarnings("ignore", category=ccalens.SmallSampleWarning)
    if args.cells:
        cells = [tuple(int(v) for v in c.split(":")) for c in args.cells.split(",")]
    elif args.quick:
        cells = [(200, 10, 10), (1000, 10, 10)]
    else:
        cells = [(n, p, q) for n in FULL_N for p, q in FULL_PQ if p + q < n]
    reps = args.reps or (100 if args.quick else 500)
    skip = set(filter(None, args.skip.split(",")))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    if "coverage" not in skip:
        rows: list[dict[str, Any]] = []
        jobs = [(c, kind) for c in cells for kind in KINDS]
        for index, ((n, p, q), kind) in enumerate(tqdm(jobs, desc="coverage cells")):
            start = time.perf_counter()
            rows += coverage_cell(n, p, q, reps, n_resamples=args.n_resamples, seed=index, kind=kind,
                                  measures=measures, methods=methods)
            tqdm.write(f"cell n={n} {p}x{q} {kind}: {time.perf_counter() - start:.0f} s")
            _write_rows(rows, out / "coverage.csv")  # after every cell: a partial run keeps its rows
            (out / "coverage.md").write_text(markdown(rows))
        figure(rows, out / "coverage.png")
        print(markdown(rows))
    if "blocks" not in skip:
        few = few_blocks_cell(2000, 5, 5, reps, (8, 16, 32, 64, 128), n_resamples=args.n_resamples, seed=7)
        _write_rows(few, out / "few_blocks.csv")
        (out / "few_blocks.md").write_text(few_blocks_markdown(few))
        print(few_blocks_markdown(few))
    lines = []
    if "paired" not in skip:
        for equal in (True, False):
            d = difference_cell(1000, 10, reps, equal=equal, n_resamples=args.n_resamples)
            lines.append(f"paired CCA difference (n = {d['n']}, q = {d['q']}, true difference {d['truth']:.3f}, "
                         f"{d['reps']} data sets): coverage {d['coverage']:.3f}, rejection rate at 0.05 "
                         f"{d['rejection_rate']:.3f}")
    if "null" not in skip:
        null = null_study(200, 5, 4, args.null_datasets)
        lines.append(f"null (n = 200, p = 5, q = 4, {null['datasets']} data sets): rejection at 0.05: "
                     + ", ".join(f"{name} {null[f'{name}_rejection']:.3f} (KS p {null[f'{name}_ks_pvalue']:.2f})"
                                 for name in ("permutation", "wilks_rao_f", "bartlett"))
                     + f"; largest |Wilks p - statsmodels CanCorr p| {null['statsmodels_max_abs_diff_wilks_p']:.2g}")
    if lines:
        (out / "paired_and_null.md").write_text("".join(f"- {line}\n" for line in lines))
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
