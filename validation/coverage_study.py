"""Coverage study of ccalens's interval methods on Gaussian populations whose similarity is known exactly.

    python -m validation.coverage_study --quick            # a few small cells (minutes)
    python -m validation.coverage_study --out validation/results   # the grid (hours on 2 cores)

Populations: X ~ N(0, I_p), Y ~ N(0, I_q) with cross-covariance diag(rho) (canonical form), rho prescribed:
``"regular"``: every canonical correlation nonzero (0.9 down to 0.3); ``"half-null"``: half of them 0 (the
case of two networks whose features share only part of their information). Population values from the
covariances: CCA mean rho = mean(rho) over min(p, q); linear CKA = ||Sxy||_F^2 / (||Sxx||_F ||Syy||_F) =
sum(rho^2) / sqrt(p q) (debiased CKA estimates the same value); Procrustes = ||Sxy||_* / sqrt(tr Sxx tr Syy) =
sum(rho) / sqrt(p q). For every cell (n, p, q, population), measure and interval method: the estimate's bias,
the coverage of the nominal 95% interval and its mean width over ``reps`` data sets. Writes ``coverage.csv``,
``coverage.md`` (the table) and ``coverage.png``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ccalens.core.resampling import bootstrap

MEASURES = ("cca", "linear_cka", "debiased_linear_cka", "procrustes")
METHODS = ("half_sampling", "basic", "percentile")
LEVEL = 0.95


@dataclass(frozen=True)
class Population:
    p: int
    q: int
    kind: str  # "regular" or "half-null"

    @property
    def rho(self) -> np.ndarray:
        m = min(self.p, self.q)
        k = m if self.kind == "regular" else m // 2
        rho = np.zeros(m)
        rho[:k] = np.linspace(0.9, 0.3, k)
        return rho

    def value(self, measure: str) -> float:
        rho, scale = self.rho, np.sqrt(self.p * self.q)
        return {"cca": rho.mean(), "linear_cka": (rho**2).sum() / scale,
                "debiased_linear_cka": (rho**2).sum() / scale, "procrustes": rho.sum() / scale}[measure]

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``X: (n, p)``, ``Y: (n, q)`` with the population's covariances."""
        rho = self.rho
        X = rng.standard_normal((n, self.p))
        Y = rng.standard_normal((n, self.q))
        m = rho.shape[0]
        Y[:, :m] = rho * X[:, :m] + np.sqrt(1.0 - rho**2) * Y[:, :m]
        return X, Y


def run_cell(n: int, population: Population, reps: int, n_resamples: int, seed: int) -> list[dict]:
    """Bias, coverage and width of every (measure, method) over ``reps`` data sets of one cell."""
    rng = np.random.default_rng(seed)
    hits = {(m, k): 0 for m in MEASURES for k in METHODS}
    widths = {key: [] for key in hits}
    errors = {m: [] for m in MEASURES}
    for rep in range(reps):
        X, Y = population.draw(rng, n)
        for measure in MEASURES:
            truth = population.value(measure)
            for method in METHODS:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = bootstrap(X, Y, measure, n_resamples=n_resamples, method=method, seed=rep)
                low, high = res.confidence_interval
                hits[(measure, method)] += int(low <= truth <= high)
                widths[(measure, method)].append(high - low)
            errors[measure].append(res.estimate - truth)
    rows = []
    for (measure, method), hit in hits.items():
        rows.append({"n": n, "p": population.p, "q": population.q, "population": population.kind,
                     "measure": measure, "method": method, "reps": reps, "n_resamples": n_resamples,
                     "population_value": population.value(measure), "bias": float(np.mean(errors[measure])),
                     "sd_estimate": float(np.std(errors[measure])), "coverage": hit / reps,
                     "mean_width": float(np.mean(widths[(measure, method)])),
                     "ranks_within_n_over_10": population.p + population.q <= n / 10})
    return rows


def markdown(rows: list[dict]) -> str:
    """One line per (cell, measure): coverage of each method, bias and sd of the estimate."""
    lines = ["| n | p x q | population | measure | bias (sd) | " + " | ".join(f"{m} coverage" for m in METHODS)
             + " |", "|" + "---|" * (5 + len(METHODS))]
    key = lambda r: (r["n"], r["p"], r["q"], r["population"], r["measure"])  # noqa: E731
    for cell, group in itertools.groupby(sorted(rows, key=key), key=key):
        by_method = {r["method"]: r for r in group}
        first = next(iter(by_method.values()))
        mark = "" if first["ranks_within_n_over_10"] else " (p + q > n / 10)"
        lines.append(f"| {cell[0]} | {cell[1]} x {cell[2]}{mark} | {cell[3]} | {cell[4]} | "
                     f"{first['bias']:+.4f} ({first['sd_estimate']:.4f}) | "
                     + " | ".join(f"{by_method[m]['coverage']:.3f}" for m in METHODS) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MEASURES), figsize=(4 * len(MEASURES), 3.6), sharey=True)
    cells = sorted({(r["n"], r["p"], r["q"], r["population"]) for r in rows})
    for ax, measure in zip(axes, MEASURES, strict=True):
        for k, method in enumerate(METHODS):
            cov = [next(r["coverage"] for r in rows if (r["n"], r["p"], r["q"], r["population"]) == c
                        and r["measure"] == measure and r["method"] == method) for c in cells]
            ax.plot(np.arange(len(cells)) + 0.1 * k, cov, "o", label=method)
        ax.axhspan(LEVEL - 0.03, LEVEL + 0.03, color="0.9")
        ax.axhline(LEVEL, color="0.5", lw=0.8)
        ax.set_title(measure)
        ax.set_ylim(0, 1.02)
        ax.set_xticks(range(len(cells)), [f"n={c[0]}\n{c[1]}x{c[2]}\n{c[3]}" for c in cells], fontsize=6)
    axes[0].set_ylabel("coverage of the nominal 95% interval")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=150)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="coverage of ccalens's intervals on known populations")
    parser.add_argument("--quick", action="store_true", help="small cells, 100 data sets each")
    parser.add_argument("--reps", type=int, default=None, help="data sets per cell (default 500; quick 100)")
    parser.add_argument("--n-resamples", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("validation/results"))
    args = parser.parse_args(argv)
    if args.quick:
        cells = [(200, Population(10, 10, kind)) for kind in ("regular", "half-null")]
        cells += [(1000, Population(10, 10, kind)) for kind in ("regular", "half-null")]
    else:
        shapes = [(10, 10), (50, 40), (200, 200)]
        cells = [(n, Population(p, q, kind)) for n in (200, 1000, 5000) for p, q in shapes
                 for kind in ("regular", "half-null") if p + q < n]
    reps = args.reps or (100 if args.quick else 500)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    iterator = tqdm(cells, desc="cells") if tqdm else cells
    for index, (n, population) in enumerate(iterator):
        rows += run_cell(n, population, reps, args.n_resamples, seed=index)
        with open(args.out / "coverage.csv", "w", newline="") as fh:  # after every cell: partial runs keep rows
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        (args.out / "coverage.md").write_text(markdown(rows))
    plot(rows, args.out / "coverage")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
