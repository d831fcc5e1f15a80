"""Conditional edits (`edit --keep`): the moved direction is orthogonal to the kept ones layer by layer,
equals the plain one when they already are, and the CLI renders exactly that move and says what was kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.directions_file import load_directions
from common.errors import UserError
from editing.conditional import KeptDirection, conditional_move, orthogonal_part

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "assets" / "example-stylegan2-64.pt"


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def test_the_conditional_direction_is_orthogonal_to_every_kept_one_on_each_layer():
    rng = np.random.default_rng(0)
    smile, yaw, age = (unit(rng.normal(size=32)) for _ in range(3))
    kept = [KeptDirection("yaw", yaw, (0, 1, 2, 3)), KeptDirection("age", age, (2, 3, 4))]
    move = conditional_move("smile", smile, [0, 1, 2, 3, 4, 5], kept)
    for layer, vector in move.vectors.items():
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
        for k in kept:
            if layer in k.layers:
                assert abs(float(vector @ k.vector)) < 1e-6
        here = [k.vector for k in kept if layer in k.layers]
        assert move.remaining[layer] == pytest.approx(np.linalg.norm(orthogonal_part(smile, here)), abs=1e-9)
    np.testing.assert_allclose(move.vectors[5], smile, atol=1e-7)  # no kept direction acts on layer 5
    assert move.remaining[5] == 1.0 and move.remaining[2] < move.remaining[0] < 1.0


def test_kept_directions_already_orthogonal_change_nothing():
    basis = np.eye(8)
    move = conditional_move("a", basis[0], [0, 1], [KeptDirection("b", basis[1], (0, 1)), KeptDirection("c", basis[5], (1,))])
    for vector in move.vectors.values():
        np.testing.assert_allclose(vector, basis[0], atol=1e-7)
    assert move.summary()["remaining"] == 1.0


def test_keeping_the_edited_direction_itself_is_refused_in_one_line():
    with pytest.raises(UserError, match="lies entirely within the kept directions"):
        conditional_move("smile", np.eye(4)[0], [0], [KeptDirection("smile", np.eye(4)[0] * -1, (0,))])


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *map(str, args)], capture_output=True, text=True)


def test_edit_keep_renders_the_conditional_move_and_records_it(tmp_path):
    assert cli("factorize", GENERATOR, "--out", tmp_path / "dirs", "-K", "3").returncode == 0
    (tmp_path / "dirs" / "labels.json").write_text(json.dumps({"yaw": {"index": 1}, "age": {"index": 2, "sign": -1}}))
    assert cli("sample", GENERATOR, tmp_path / "s", "-n", "1", "--device", "cpu").returncode == 0
    directions = load_directions(tmp_path / "dirs" / "directions.npz")
    mixed = unit(directions.directions[0] + 0.5 * directions.directions[1])
    np.save(tmp_path / "mixed.npy", mixed[None].astype(np.float32))  # an InterFaceGAN-style [1, dim] boundary
    result = cli("edit", tmp_path / "s", tmp_path / "e", "-g", GENERATOR, "-d", tmp_path / "dirs" / "directions.npz",
                 "--edit", "0=2", "--keep", f"age,{tmp_path / 'mixed.npy'}", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "keeping age" in result.stderr and "of the direction is left" in result.stderr
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["conditional"]["0"]["kept"] == ["age", str(tmp_path / "mixed.npy")]
    assert 0 < record["conditional"]["0"]["remaining"] < 1
    plain = cli("edit", tmp_path / "s", tmp_path / "p", "-g", GENERATOR, "-d", tmp_path / "dirs" / "directions.npz",
                "--edit", "0=2", "--device", "cpu")
    assert plain.returncode == 0 and "conditional" not in plain.stdout
    from common.images import read_rgb
    assert np.abs(read_rgb(tmp_path / "e" / "seed0000" / "dir00_+2p00.png").astype(int)
                  - read_rgb(tmp_path / "p" / "seed0000" / "dir00_+2p00.png")).mean() > 0.5  # the side effect is gone
    bad = cli("edit", tmp_path / "s", tmp_path / "x", "-g", GENERATOR, "-d", tmp_path / "dirs" / "directions.npz",
              "--edit", "0=2", "--keep", "smile")
    assert bad.returncode == 2 and "--keep smile: not a direction index" in bad.stderr


def test_the_conditional_move_is_what_the_generator_renders(tmp_path):
    """ConditionalMove.apply adds strength x vector on its layers only."""
    ws = torch.zeros([1, 4, 3])
    move = conditional_move("a", np.array([0.0, 0.0, 1.0]), [1, 3], [KeptDirection("b", unit([0, 1, 1]), (3,))])
    moved = move.apply(ws, 2.0)
    np.testing.assert_allclose(moved[0, 1].numpy(), [0, 0, 2], atol=1e-6)
    np.testing.assert_allclose(moved[0, 3].numpy(), 2 * unit([0, -1, 1]), atol=1e-6)
    assert moved[0, 0].abs().sum() == 0 and moved[0, 2].abs().sum() == 0



def test_sefas_own_directions_need_no_conditioning(tmp_path):
    """SeFa's directions are eigenvectors of one symmetric matrix, so orthonormal: keeping one out of another
    changes nothing (what is worth keeping out comes from elsewhere: another factorisation, a .npy boundary)."""
    assert cli("factorize", GENERATOR, "--out", tmp_path / "dirs", "-K", "4").returncode == 0
    directions = load_directions(tmp_path / "dirs" / "directions.npz").directions.astype(np.float64)
    move = conditional_move("0", directions[0], [0, 1], [KeptDirection(str(k), directions[k], (0, 1)) for k in (1, 2, 3)])
    assert move.summary()["remaining"] == pytest.approx(1.0, abs=1e-6)
