"""Metric maths on inputs with known answers: Fréchet distance, Inception Score, precision/recall."""

import warnings

import numpy as np
import pytest

from ditkit.evaluation import (FewSamplesWarning, feature_statistics, fid_from_features, frechet_distance,
                               inception_score, precision_recall)


def _random_rotation(dim, rng):
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_frechet_distance_of_a_set_to_itself_is_zero(method):
    feats = np.random.default_rng(0).normal(size=(400, 24)) @ np.random.default_rng(1).normal(size=(24, 24))
    assert fid_from_features(feats, feats, method=method) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_frechet_distance_matches_closed_form_for_known_gaussians(method):
    # Covariances sharing an eigenbasis: FD = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    rng = np.random.default_rng(0)
    dim = 6
    rot = _random_rotation(dim, rng)
    a, b = rng.uniform(0.2, 3.0, dim), rng.uniform(0.2, 3.0, dim)
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    s1, s2 = rot @ np.diag(a) @ rot.T, rot @ np.diag(b) @ rot.T
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2, method=method) == pytest.approx(expected, rel=1e-9)
    # 1-D sanity: N(0, 1) vs N(3, 4) → 9 + (1 - 2)^2 = 10.
    assert frechet_distance([0.0], [[1.0]], [3.0], [[4.0]], method=method) == pytest.approx(10.0)


def test_frechet_distance_estimated_from_samples_approaches_the_closed_form():
    rng = np.random.default_rng(3)
    s1, s2 = np.diag([1.0, 2.0, 0.5]), np.diag([2.0, 1.0, 0.5])
    x = rng.multivariate_normal([0, 0, 0], s1, size=40_000)
    y = rng.multivariate_normal([1, 0, 0], s2, size=40_000)
    expected = 1.0 + (1 - np.sqrt(2)) ** 2 * 2
    assert fid_from_features(x, y) == pytest.approx(expected, abs=0.03)


def test_sqrtm_and_eigh_routes_agree_on_non_commuting_covariances():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(600, 300)), rng.normal(size=(600, 300)) @ rng.normal(size=(300, 300)) * 0.1
    stats = (*feature_statistics(a), *feature_statistics(b))
    assert frechet_distance(*stats, method="sqrtm") == pytest.approx(frechet_distance(*stats, method="eigh"), rel=1e-6)


def test_fewer_samples_than_dimensions_warns_and_still_gives_a_finite_distance():
    rng = np.random.default_rng(5)
    with pytest.warns(FewSamplesWarning, match="unreliable"):
        stats1 = feature_statistics(rng.normal(size=(10, 64)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewSamplesWarning)
        stats2 = feature_statistics(rng.normal(size=(10, 64)) + 1.0)
    for method in ("sqrtm", "eigh"):  # singular covariance products: sqrtm needs its regularised retry
        value = frechet_distance(*stats1, *stats2, method=method)
        assert np.isfinite(value) and value > 60  # the means alone are ~64 apart (squared)


def test_inception_score_extremes():
    k, n = 10, 1000
    confident = np.full((n, k), -30.0)
    confident[np.arange(n), np.arange(n) % k] = 30.0  # one sure class each, all classes equally used
    # Unshuffled chunks of 100 hold each class exactly 10 times: IS is exactly K.
    assert inception_score(confident, shuffle_seed=None)[0] == pytest.approx(k, rel=1e-6)
    assert 9.0 < inception_score(confident)[0] <= k  # shuffled chunks are only nearly balanced
    assert inception_score(np.zeros((n, k)))[0] == pytest.approx(1.0)  # no confidence at all
    one_class = np.zeros((n, k))
    one_class[:, 3] = 30.0  # confident but no diversity
    assert inception_score(one_class)[0] == pytest.approx(1.0, abs=1e-6)


def test_inception_score_does_not_depend_on_the_order_of_a_class_sorted_set():
    k, n = 10, 1000
    logits = np.full((n, k), -30.0)
    logits[np.arange(n), np.arange(n) * k // n] = 30.0  # sorted by class, like the bundled digits
    assert inception_score(logits)[0] > 9.0


def test_precision_recall_on_toy_point_clouds():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(300, 8))
    assert precision_recall(real, real.copy()) == (1.0, 1.0)
    far = rng.normal(size=(300, 8)) + 100.0
    assert precision_recall(real, far) == (0.0, 0.0)
    # Fakes collapsed onto a few real points: all realistic (precision 1), little coverage (recall low).
    collapsed = real[:5].repeat(60, axis=0) + 1e-6 * rng.normal(size=(300, 8))
    precision, recall = precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.2
