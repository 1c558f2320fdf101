"""The front door and one vocabulary (issue #11 items 1-3, 5-7, 12; issue #10 item 10): reproducers and contracts."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.special import gammaln

import ccalens
from ccalens.core import STATS_MEASURES, SimilarityResult, SufficientStats
from ccalens.core.measures import MEASURES, compare, pwcca, similarity_matrix, svcca
from ccalens.core.null import null_mean_rho


def related(seed: int, n: int = 300, p: int = 7, q: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    X = latent @ rng.standard_normal((3, p)) + 0.8 * rng.standard_normal((n, p))
    Y = np.tanh(latent @ rng.standard_normal((3, q))) + 0.8 * rng.standard_normal((n, q))
    return X, Y


# ------------------------------------------------------------------ item 1: the front door
def test_import_ccalens_gives_the_vocabulary_and_stays_light():
    for name in ("cca", "svcca", "pwcca", "linear_cka", "debiased_linear_cka", "rbf_cka", "procrustes", "compare",
                 "similarity_matrix", "CCA", "SufficientStats", "SimilarityResult", "SimilarityMatrix"):
        assert hasattr(ccalens, name), name
    assert ccalens.cca is MEASURES["cca"] and ccalens.SufficientStats is SufficientStats
    code = (
        "import sys, ccalens; ccalens.cca; "
        "bad = [m for m in ('torch', 'ccalens.conv', 'ccalens.extract', 'dask') if m in sys.modules]; "
        "assert not bad, bad; "
        "ccalens.conv_similarity; assert 'ccalens.conv' in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(ccalens.__file__).parents[1]))
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        ccalens.nonsense  # noqa: B018


def test_no_shims_for_old_names_or_paths():
    """A 0.x release keeps no aliases or gathering modules for names that moved (issue #25 item 4)."""
    import importlib

    import ccalens.core

    assert dir(ccalens) == sorted(ccalens.__all__)
    assert not hasattr(ccalens, "cca_similarity") and not hasattr(ccalens.core, "cca_similarity")
    for name in ("whiten", "Whitening", "cca_qr"):
        assert not hasattr(ccalens.core, name), name
    for module in ("ccalens.extract.hooks", "ccalens.extract.store", "ccalens.extract._exports",
                   "ccalens.models.training"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(module)
    import ccalens.report

    assert not hasattr(ccalens.report, "write_json")  # the writers are ccalens.io's
    import ccalens.extract

    assert dir(ccalens.extract) == sorted(ccalens.extract.__all__)
    assert all(hasattr(ccalens.extract, name) for name in ("ActivationStore", "stats_from_store"))


def test_low_level_blocks_live_in_core_linalg():
    import ccalens.core.linalg as linalg

    for name in ("whiten", "Whitening", "CholeskyWhitening", "cca_from_covariances", "cca_from_whitenings",
                 "cca_from_stats", "cca_qr", "principal_whitening", "canonical_correlations"):
        assert hasattr(linalg, name), name
    # kernel.py and the measures: the definitions import the kernel only when rbf_cka runs
    source = (Path(ccalens.__file__).parent / "core" / "measures" / "definitions.py").read_text()
    assert "from .kernel import" not in source.split("def _rbf_data")[0]


# ------------------------------------------------------------------ item 2: one signature
def test_every_measure_takes_data_or_stats_with_i_j():
    X, Y = related(1)
    Z = X[:, :4] + 0.3 * np.random.default_rng(2).standard_normal((300, 4))
    stats = SufficientStats.from_arrays(Z, X, Y)
    pair = SufficientStats.from_arrays(X, Y)
    for name in STATS_MEASURES:
        fn = MEASURES[name]
        ref = fn(X, Y).score
        assert fn(stats=pair).score == pytest.approx(ref, abs=1e-10), name
        assert fn(stats=stats, i=1, j=2).score == pytest.approx(ref, abs=1e-10), name
        assert fn(stats=stats, i=-2, j=-1).score == pytest.approx(ref, abs=1e-10), name
        assert fn(stats=stats, i=1, j=1).score == pytest.approx(1.0, abs=1e-9), name
    for name in ("debiased_linear_cka", "rbf_cka"):
        assert name not in STATS_MEASURES
        assert MEASURES[name](X, Y).measure == name
        with pytest.raises(ValueError, match=f"{name} needs the data X and Y"):
            MEASURES[name](stats=pair)


def test_signature_errors_are_clear():
    X, Y = related(3)
    stats = SufficientStats.from_arrays(X, Y)
    with pytest.raises(ValueError, match="not both"):
        ccalens.cca(X, Y, stats=stats)
    with pytest.raises(ValueError, match="leave them out"):
        ccalens.cca(X, Y, i=0, j=1)
    with pytest.raises(ValueError, match="needs X and Y"):
        ccalens.cca(X)
    with pytest.raises(ValueError, match=r"i must be an index in 0\.\.1"):
        ccalens.cca(stats=stats, i=2, j=0)
    with pytest.raises(TypeError, match="stats must be SufficientStats"):
        ccalens.cca(stats=X)
    with pytest.raises(TypeError, match="unexpected keyword argument 'tol'"):
        ccalens.MEASURES["linear_cka"](X, Y, tol=1e-3)
    with pytest.raises(ValueError, match="weights_from"):
        pwcca(X, Y, weights_from="z")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        svcca(X, Y, threshold=0.0)
    with pytest.raises(ValueError, match="keep"):
        svcca(X, Y, keep="energy")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="accepted by none"):
        compare(X, Y, ["cca"], bandwidth=3)
    with pytest.raises(ValueError, match="measure must be one of"):
        similarity_matrix([X, Y], "rbf_cka")
    with pytest.raises(ValueError, match="need"):
        compare(stats=stats, measures=["linear_cka", "debiased_linear_cka"])


def test_svcca_with_more_than_two_representations_needs_i_and_j():
    """Issue #10 item 10: svcca(stats=...) with three representations silently compared the first two."""
    X, Y = related(4)
    stats = SufficientStats.from_arrays(X, Y, X[:, :3])
    for name in STATS_MEASURES:
        with pytest.raises(ValueError, match="holds 3 representations: give i and j"):
            MEASURES[name](stats=stats)
        with pytest.raises(ValueError, match="give both i and j"):
            MEASURES[name](stats=stats, i=0)
    assert svcca(stats=stats, i=0, j=2).score == pytest.approx(svcca(X, X[:, :3]).score, abs=1e-10)


def test_compare_and_similarity_matrix_take_every_stats_measure_and_options():
    X, Y = related(5)
    options = {"keep": "variance", "threshold": 0.9, "weights_from": "smaller", "tol": 1e-8}
    res = compare(X, Y, measures=list(MEASURES), **options)
    assert list(res) == list(MEASURES)
    for name, r in res.items():
        own = {k: v for k, v in options.items() if k in {"tol", "keep", "threshold", "weights_from"}}
        single = MEASURES[name](X, Y, **{k: v for k, v in own.items() if k in _accepted(name)})
        assert r.score == pytest.approx(single.score, abs=1e-12), name
    stats = SufficientStats.from_arrays(X, Y, X[:, :3])
    by_stats = compare(stats=stats, i=0, j=2, measures=STATS_MEASURES)
    for name in STATS_MEASURES:
        assert by_stats[name].score == pytest.approx(MEASURES[name](X, X[:, :3]).score, abs=1e-10)
        M = similarity_matrix(stats, name, **{k: v for k, v in options.items() if k in _accepted(name)})
        assert M.scores[0, 2] == pytest.approx(
            MEASURES[name](stats=stats, i=0, j=2, **{k: v for k, v in options.items() if k in _accepted(name)}).score,
            abs=1e-10,
        )


def _accepted(name: str) -> set[str]:
    return {"cca": {"tol"}, "svcca": {"tol", "keep", "threshold"}, "pwcca": {"tol", "weights_from"}}.get(name, set())


# ------------------------------------------------------------------ item 3: one result family
def test_results_share_typed_fields_and_serialise():
    X, Y = related(6)
    res = compare(X, Y, measures=list(MEASURES))
    for name, r in res.items():
        assert isinstance(r, SimilarityResult)
        d = json.loads(json.dumps(r.to_dict()))
        assert d["measure"] == name and d["score"] == pytest.approx(r.score)
        assert {"rank_x", "rank_y", "distance", "null_mean_rho", "details"} <= set(d)
        if r.correlations is not None:  # CCA family: the mean rho of unrelated data of the same n and ranks
            assert r.null_mean_rho == pytest.approx(null_mean_rho(r.n_samples, r.rank_x, r.rank_y))
        else:
            assert r.null_mean_rho is None
        if name in ("cca", "svcca", "pwcca"):
            assert r.rank_x == 7 and r.rank_y == 5 and r.correlations is not None
            assert "rank_x" not in r.details and "weights" not in r.details
    assert res["pwcca"].weights is not None and res["pwcca"].weights.sum() == pytest.approx(1.0)
    assert res["procrustes"].distance == pytest.approx(np.sqrt(2 - 2 * res["procrustes"].score))
    for name in ("linear_cka", "debiased_linear_cka", "rbf_cka"):
        assert res[name].distance == pytest.approx(np.arccos(res[name].score)), name
    assert res["cca"].distance is None


# ------------------------------------------------------------------ item 6: SVCCA's truncation rule
def spectrum_data(singular_values: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Centred data ``(n, d)`` whose singular values are exactly ``singular_values`` (random directions)."""
    rng = np.random.default_rng(seed)
    d = singular_values.size
    U = np.linalg.qr(rng.standard_normal((n, d)) - rng.standard_normal((n, d)).mean(0))[0]
    U = np.linalg.qr(U - U.mean(0))[0]  # orthonormal and centred
    V = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return (U * singular_values) @ V.T


def test_svcca_rules_keep_the_appendix_rank_and_the_variance_rank():
    """Two strong directions and 50 weak ones: 99% of the variance is 2 directions, 99% of sum |s| is 49."""
    s = np.concatenate([[100.0, 100.0], np.linspace(1.2, 0.8, 50)])  # distinct values: no tie at the cut
    X = spectrum_data(s, 400, 0)
    Y = X[:, :10] @ np.random.default_rng(1).standard_normal((10, 8)) + np.random.default_rng(2).standard_normal(
        (400, 8)
    )
    appendix, kornblith = svcca(X, Y), svcca(X, Y, keep="variance")
    assert appendix.rank_x == 49 and kornblith.rank_x == 2
    # the brute-force reference: the rules applied to the SVD of the centred data
    sv = np.linalg.svd(X - X.mean(0), compute_uv=False)
    assert int(np.searchsorted(np.cumsum(sv) / sv.sum(), 0.99 - 1e-12)) + 1 == 49
    assert int(np.searchsorted(np.cumsum(sv**2) / (sv**2).sum(), 0.99 - 1e-12)) + 1 == 2
    assert appendix.details["keep"] == "singular_values" and appendix.details["threshold"] == 0.99
    assert appendix.details["explained_x"] == pytest.approx(sv[:49].sum() / sv.sum(), abs=1e-12)
    assert kornblith.details["keep"] == "variance"
    assert appendix.score != pytest.approx(kornblith.score, abs=1e-3)
    saved = json.loads(json.dumps(appendix.to_dict()))
    assert saved["rank_x"] == 49 and saved["details"]["keep"] == "singular_values"
    # the reference score: CCA by QR of the kept principal components on each side
    def top(A: np.ndarray, k: int) -> np.ndarray:
        U, _, _ = np.linalg.svd(A - A.mean(0), full_matrices=False)
        return U[:, :k]

    rho = np.linalg.svd(top(X, 49).T @ top(Y, appendix.rank_y), compute_uv=False)
    assert appendix.score == pytest.approx(rho.mean(), abs=1e-9)


def test_svcca_rule_counts_directions_below_the_cutoff():
    """The appendix rule sums every singular value, also those of directions the 1e-10 cut-off drops."""
    s = np.concatenate([np.ones(20), np.full(400, 2e-6)])  # 400 directions of variance 4e-12 < 1e-10
    X = spectrum_data(s, 1000, 3)
    res = svcca(X, X[:, :5])
    # total sum of s: 20 + 8e-4; 99% of it needs all 20 strong directions (19 give 19 / 20.0008 < 0.99)
    assert res.rank_x == 20
    assert res.details["explained_x"] == pytest.approx(20 / (20 + 400 * 2e-6), rel=1e-6)


def test_the_old_variance_spelling_is_gone_with_a_clear_error():
    """0.x: SVCCA's rule is ``keep`` and ``threshold`` only (the ``variance=`` alias was removed)."""
    X, Y = related(7)
    with pytest.raises(TypeError, match="variance"):
        svcca(X, Y, variance=0.9)
    with pytest.raises(TypeError, match=r"option\(s\) variance are accepted by none"):
        compare(X, Y, ["svcca"], variance=0.9)
    with pytest.raises((TypeError, ValueError), match="variance"):
        similarity_matrix([X, Y], "svcca", variance=0.9)


def test_one_svcca_rule_for_the_core_the_conv_measures_and_the_experiments():
    """Every place that takes SVCCA's rule rejects a bad one with SvccaRule's own message."""
    from ccalens.conv import DFTStats, conv_similarity
    from ccalens.experiments.two_initialisations import two_init_heatmap

    A = np.random.default_rng(0).standard_normal((20, 3, 4, 4))
    for call in (lambda: svcca(*related(7), threshold=1.5),
                 lambda: DFTStats.from_arrays(A, A).result("svcca", threshold=1.5),
                 lambda: conv_similarity(A, A, convention="dft", measure="svcca", threshold=1.5),
                 lambda: two_init_heatmap({"l": A[:, 0, 0]}, {"l": A[:, 0, 0]}, threshold=1.5)):
        with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\], got 1.5"):
            call()
    with pytest.raises(ValueError, match="keep must be 'singular_values' or 'variance'"):
        conv_similarity(A, A, convention="dft", measure="svcca", keep="energy")


# ------------------------------------------------------------------ item 7: PWCCA
def tied_pair(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Y holds a rotated copy of 4 of X's neurons: four canonical correlations tie at 1."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 8)) @ rng.standard_normal((8, 8))
    Q = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    Y = np.hstack([X[:, :4] @ Q, 0.5 * X[:, 4:6] + rng.standard_normal((n, 2))])
    return X, Y


def test_pwcca_with_tied_correlations_does_not_depend_on_round_off():
    X, Y = tied_pair()
    reference = pwcca(X, Y)
    assert np.sum(reference.correlations > 1 - 1e-9) == 4
    for seed in range(5):
        perm = np.random.default_rng(seed).permutation(len(X))
        assert pwcca(X[perm], Y[perm]).score == pytest.approx(reference.score, abs=1e-12)
    assert compare(X, Y, ["svcca", "pwcca"])["pwcca"].score == pytest.approx(reference.score, abs=1e-12)
    assert compare(X, Y, ["pwcca"])["pwcca"].score == pytest.approx(reference.score, abs=1e-12)
    assert similarity_matrix([X, Y], "pwcca").scores[0, 1] == pytest.approx(reference.score, abs=1e-12)
    # the tied group's weight is split evenly
    w = reference.weights
    assert w is not None and np.ptp(w[:4]) == pytest.approx(0.0, abs=1e-15)


def test_pwcca_tie_across_the_kept_correlations_is_shared_fairly():
    """X keeps 6 dimensions, Y 4: two correlations are 1 and X's four others are 0, of which only two are among the
    k = 4 correlations. Which two is round-off; the group's weight counts two of its four, whatever the basis."""
    rng = np.random.default_rng(0)
    n = 300
    U = np.linalg.qr(rng.standard_normal((n, 8)))[0]
    U = np.linalg.qr(U - U.mean(0))[0]  # orthonormal, centred: exactly uncorrelated columns
    X = U[:, :6] @ rng.standard_normal((6, 6))
    Y = U[:, [0, 1, 6, 7]] @ rng.standard_normal((4, 4))
    reference = pwcca(X, Y)
    np.testing.assert_allclose(reference.correlations, [1, 1, 0, 0], atol=1e-7)
    for seed in range(4):
        perm = np.random.default_rng(seed).permutation(n)
        assert pwcca(X[perm], Y[perm]).score == pytest.approx(reference.score, abs=1e-7)
    assert compare(X, Y, ["svcca", "pwcca"])["pwcca"].score == pytest.approx(reference.score, abs=1e-7)
    # the definition: each correlation of a group of m weighs E|u_1| sum_j ||P_g x_j|| (E|u_1| over the unit
    # sphere of R^m: Gamma(m / 2) / (sqrt(pi) Gamma((m + 1) / 2))), two of each group
    Xc = X - X.mean(0)
    Q1 = np.linalg.qr(U[:, :2])[0]  # the variates of the tied group at 1 (unit norm)
    Q0 = np.linalg.qr((np.eye(n) - Q1 @ Q1.T) @ Xc)[0][:, :4]  # X's directions uncorrelated with Y
    mean_abs = {m: np.exp(gammaln(m / 2) - gammaln((m + 1) / 2)) / np.sqrt(np.pi) for m in (2, 4)}
    w1 = np.linalg.norm(Q1.T @ Xc, axis=0).sum() * mean_abs[2] * 2
    w0 = np.linalg.norm(Q0.T @ Xc, axis=0).sum() * mean_abs[4] * 2
    assert reference.score == pytest.approx(w1 / (w1 + w0), abs=1e-7)


def test_pwcca_weights_from_either_side():
    X, Y = related(8, p=9, q=4)
    from_x, from_y = pwcca(X, Y), pwcca(X, Y, weights_from="y")
    assert from_x.details["weights_from"] == "x" and from_y.details["weights_from"] == "y"
    assert from_y.score == pytest.approx(pwcca(Y, X).score, abs=1e-12)
    assert from_x.score != pytest.approx(from_y.score, abs=1e-6)
    smaller = pwcca(X, Y, weights_from="smaller")  # Y keeps 4 dimensions, X 9
    assert {k: v for k, v in smaller.details.items() if k != "plan"} == {"weights_from": "y", "weights_rule": "smaller"}
    assert smaller.score == pytest.approx(from_y.score, abs=1e-12)
    assert pwcca(Y, X, weights_from="smaller").score == pytest.approx(smaller.score, abs=1e-12)
    M = similarity_matrix([X, Y], "pwcca", weights_from="smaller").scores
    assert M[0, 1] == pytest.approx(M[1, 0], abs=1e-12)


# ------------------------------------------------------------------ item 12: scale over the float64 range
@pytest.mark.parametrize("scale", [1e-300, 1e-160, 1e-100, 1e-45, 1e40, 1e76, 1e150, 1e300])
def test_every_measure_is_scale_free_over_the_float64_range(scale):
    X, Y = related(9, n=150)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for name, fn in MEASURES.items():
            base = fn(X, Y)
            scaled = fn(X * scale, Y)
            assert np.isfinite(scaled.score), name
            assert scaled.score == pytest.approx(base.score, abs=1e-9), name


def test_scale_reproducers_of_the_issue():
    X, Y = related(10, n=500, p=20, q=20)
    assert ccalens.debiased_linear_cka(X * 1e-45, Y).score == pytest.approx(ccalens.debiased_linear_cka(X, Y).score)
    assert ccalens.debiased_linear_cka(X * 1e40, Y).score == pytest.approx(ccalens.debiased_linear_cka(X, Y).score)
    assert ccalens.procrustes(X * 1e-100, Y).score == pytest.approx(ccalens.procrustes(X, Y).score)
    assert ccalens.linear_cka(X * 1e76, Y).score == pytest.approx(ccalens.linear_cka(X, Y).score)


def test_statistics_near_the_float64_limits_give_a_clear_error_or_the_right_value():
    X, Y = related(11, n=200)
    for scale in (1e-100, 1e100):
        stats = SufficientStats.from_arrays(X * scale, Y)
        for name in STATS_MEASURES:
            assert MEASURES[name](stats=stats).score == pytest.approx(MEASURES[name](X, Y).score, abs=1e-9), name
    tiny = SufficientStats.from_arrays(X * 1e-160, Y)  # co-moment in float64's subnormal range
    huge = SufficientStats.from_arrays(X * 1e140, Y)  # co-moment (~1e282) near float64's largest values
    for name in STATS_MEASURES:
        with pytest.raises(ValueError, match=r"representation 0 .*rescale its features"):
            MEASURES[name](stats=tiny)
        with pytest.raises(ValueError, match=r"representation 0 .*rescale its features"):
            MEASURES[name](stats=huge)


def test_whitening_top_rules():
    from ccalens.core.linalg import principal_whitening, whiten

    rng = np.random.default_rng(12)
    A = rng.standard_normal((500, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    cov = np.cov(A.T)
    w = principal_whitening(cov)
    eig = np.sort(np.linalg.eigvalsh(cov))[::-1]
    assert w.total_deviation == pytest.approx(np.sqrt(eig).sum(), rel=1e-12)
    for threshold in (0.5, 0.8, 0.95, 1.0):
        by_var = w.top(threshold, "variance")
        np.testing.assert_array_equal(by_var.eigenvalues, w.top_variance(threshold).eigenvalues)
        expected = int(np.searchsorted(np.cumsum(np.sqrt(eig)) / np.sqrt(eig).sum(), threshold - 1e-12)) + 1
        assert w.top(threshold).rank == expected
        assert w.top(threshold).explained("singular_values") >= threshold - 1e-12
    # a whitening that does not know its dropped directions sums the kept ones
    plain = whiten(cov)
    assert plain.total_deviation is None and plain.top(0.8).rank == w.top(0.8).rank
