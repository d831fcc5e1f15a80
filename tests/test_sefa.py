"""SeFa's closed form against a NumPy reference and against its defining property."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import UserError
from common.layer_spec import format_layer_spec, parse_layer_spec
from factorization.sefa import factorize, stack_normalised
from factorization.stage import factorize_checkpoint
from generators.checkpoint import load_checkpoint, save_native
from tests import checkpoint_factories as factories


def random_layers(seed: int = 0, dim: int = 24) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # Rows with very different scales: row normalisation must undo them.
    return [rng.normal(size=(n, dim)) * rng.uniform(0.01, 100, size=(n, 1)) for n in (40, 17, 33)]


def reference_sefa(weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The original SeFa code path: transpose, concatenate, normalise columns, general `np.linalg.eig`."""
    weight = np.concatenate([w.T for w in weights], axis=1)
    weight = weight / np.linalg.norm(weight, axis=0, keepdims=True)
    values, vectors = np.linalg.eig(weight.dot(weight.T))
    order = np.argsort(values.real)[::-1]
    return values.real[order], vectors.real[:, order].T


def test_matches_numpy_reference_up_to_sign():
    weights = random_layers()
    result = factorize(weights, 10)
    values, vectors = reference_sefa(weights)
    np.testing.assert_allclose(result.eigenvalues, values[:10], rtol=1e-10)
    np.testing.assert_allclose(result.all_eigenvalues, values, rtol=1e-9, atol=1e-9)
    for mine, ref in zip(result.directions, vectors[:10]):
        np.testing.assert_allclose(np.abs(mine @ ref), 1.0, atol=1e-9)


def test_directions_are_orthonormal_and_signs_deterministic():
    result = factorize(random_layers(1), None)
    np.testing.assert_allclose(result.directions @ result.directions.T, np.eye(24), atol=1e-10)
    for row in result.directions:
        assert row[np.argmax(np.abs(row))] > 0
    again = factorize(random_layers(1), None)
    np.testing.assert_array_equal(again.directions, result.directions)


def test_first_direction_maximises_response_among_random_unit_vectors():
    weights = random_layers(2)
    a = stack_normalised(weights)
    result = factorize(weights, 3)
    best = np.linalg.norm(a @ result.directions[0]) ** 2
    np.testing.assert_allclose(best, result.eigenvalues[0], rtol=1e-10)
    rng = np.random.default_rng(0)
    probes = rng.normal(size=(5000, a.shape[1]))
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    assert (np.linalg.norm(probes @ a.T, axis=1) ** 2).max() < best
    # and the k-th direction is the best within the orthogonal complement of the previous ones
    probes -= (probes @ result.directions[0])[:, None] * result.directions[0]
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    assert (np.linalg.norm(probes @ a.T, axis=1) ** 2).max() <= result.eigenvalues[1] + 1e-9


def test_row_normalisation_removes_per_layer_scale():
    weights = random_layers(3)
    scaled = [w * s for w, s in zip(weights, (1e-3, 7.0, 1e4))]
    np.testing.assert_allclose(np.abs(factorize(weights, 5).directions), np.abs(factorize(scaled, 5).directions), atol=1e-9)


@pytest.mark.parametrize(
    "spec, expected",
    [("all", list(range(10))), ("0-1", [0, 1]), ("2-5", [2, 3, 4, 5]), ("6-", [6, 7, 8, 9]), ("0,3,5", [0, 3, 5]), ("5,0-1,1", [0, 1, 5]), ("-2", [0, 1, 2])],
)
def test_layer_spec(spec, expected):
    assert parse_layer_spec(spec, 10) == expected
    assert parse_layer_spec(format_layer_spec(expected), 10) == expected


@pytest.mark.parametrize("spec", ["10", "3-2", "a-b", "1-x", "0-12", ","])
def test_bad_layer_spec(spec):
    with pytest.raises(UserError, match="--layers"):
        parse_layer_spec(spec, 10)


def test_layer_selection_factorises_exactly_the_selected_affines(tmp_path):
    source = factories.random_generator()
    checkpoint = load_checkpoint(save_native(tmp_path / "g.pt", source))
    directions, _ = factorize_checkpoint(checkpoint, "2-3", 4)
    manual = factorize([source.style_affine(i).weight.double().numpy() for i in (2, 3)], 4)
    np.testing.assert_allclose(directions.directions, manual.directions, atol=1e-12)
    assert directions.layers == [2, 3]
    assert directions.layer_names == ["synthesis.b8.conv1.affine", "synthesis.b16.conv0.affine"]
    assert directions.checkpoint_sha256 == checkpoint.sha256
    other = factorize([source.style_affine(i).weight.double().numpy() for i in (0, 1)], 4)
    assert not np.allclose(np.abs(other.directions), np.abs(directions.directions))
