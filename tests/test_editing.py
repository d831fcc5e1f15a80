"""`edit`: the direction move, grids, labels, the generator check, and paste-back into the photo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common.directions_file import load_directions
from common.errors import UserError
from common.images import LABEL_HEADER, read_rgb
from common.photo_io import read_photo
from editing.edit_spec import parse_edit, parse_strengths
from editing.paste_back import paste_back
from editing.stage import EditOptions, run_edit
from factorization.stage import run_factorize
from generators.checkpoint import save_native
from generators.latent_edit import move_along
from tests import checkpoint_factories as factories
from tests.conftest import SHARED
from tests.hardening_helpers import assert_same_picture

PORTRAITS = SHARED / "photos" / "face-recognition"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit")
    generator = factories.random_generator(factories.small_config(32))
    checkpoint = save_native(root / "g.pt", generator)
    run_factorize(checkpoint, root / "dirs", "0-3", 4, device_name="cpu")
    (root / "dirs" / "labels.json").write_text(json.dumps({"age": {"index": 2, "sign": -1, "layers": [4, 5]}}))
    codes = root / "codes"
    codes.mkdir()
    z = torch.randn([2, generator.z_dim], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ws = generator.mapping(z, truncation_psi=0.7)
    for i in range(2):
        np.save(codes / f"face_{i}.npy", ws[i].numpy())
    return root, generator, checkpoint, codes


def test_moving_changes_exactly_the_selected_styles_by_alpha_A_n(setup):
    _, generator, _, _ = setup
    ws = torch.randn(3, generator.num_ws, generator.w_dim)
    direction = torch.nn.functional.normalize(torch.randn(generator.w_dim), dim=0)
    alpha, layers = 2.5, [1, 4]
    moved = move_along(ws, direction, layers, alpha)
    for i in range(generator.num_ws):
        affine = generator.style_affine(i)
        change = affine(moved[:, i]) - affine(ws[:, i])
        if i in layers:
            expected = alpha * (affine.weight * affine.weight_gain) @ direction
            torch.testing.assert_close(change, expected.expand_as(change), atol=1e-5, rtol=1e-5)
        else:
            assert torch.equal(change, torch.zeros_like(change))
    assert torch.equal(move_along(ws, direction, layers, 0.0), ws)


def test_edit_writes_images_grid_and_sweep_with_zero_as_reconstruction(setup, tmp_path):
    root, generator, checkpoint, codes = setup
    records = []
    summary = run_edit(str(codes), tmp_path, checkpoint, root / "dirs" / "directions.npz", ["0=-2:2:3", "age=+1.5"],
                       EditOptions(animate="gif"), "cpu", emit=records.append)
    assert summary == {"edited": 2, "skipped": 0, "failed": 0, "redone": 0}
    folder = tmp_path / "face_0"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted([
        "dir00_-2p00.png", "dir00_+0p00.png", "dir00_+2p00.png", "age_+1p50.png", "grid.png", "dir00.gif", "age.gif",
        "reconstruction.png"])
    code = torch.from_numpy(np.load(codes / "face_0.npy"))[None]
    with torch.no_grad():
        reconstruction = generator.synthesis(code)
    from common.images import tensor_to_uint8

    # edit renders its codes in one batch, the test one by one: the same picture, not the same bits
    assert_same_picture(read_rgb(folder / "dir00_+0p00.png"), tensor_to_uint8(reconstruction)[0])
    assert_same_picture(read_rgb(folder / "reconstruction.png"), tensor_to_uint8(reconstruction)[0])
    grid = read_rgb(folder / "grid.png")  # 2 rows (edits) x 4 columns (-2, 0, 1.5, 2), labelled
    left = grid.shape[1] - (4 * 32 + 5 * 4)
    assert grid.shape[0] == LABEL_HEADER + 2 * 32 + 3 * 4 and left > 20  # room for the row names
    grid = grid[LABEL_HEADER:, left:]
    assert_same_picture(grid[4 + 36 : 4 + 36 + 32, 4 + 36 : 4 + 36 + 32], tensor_to_uint8(reconstruction)[0])
    # "age" moved along -direction 2 on layers 4-5 only
    directions = load_directions(root / "dirs" / "directions.npz")
    with torch.no_grad():
        expected = generator.synthesis(move_along(code, -torch.from_numpy(directions.directions[2]).float(), [4, 5], 1.5))
    assert_same_picture(read_rgb(folder / "age_+1p50.png"), tensor_to_uint8(expected)[0])
    assert not (read_rgb(folder / "dir00_+2p00.png") == read_rgb(folder / "dir00_-2p00.png")).all()

    again = run_edit(str(codes), tmp_path, checkpoint, root / "dirs" / "directions.npz", ["0=-2:2:3", "age=+1.5"],
                     EditOptions(animate="gif"), "cpu")
    assert again["skipped"] == 2


def test_directions_must_belong_to_the_generator(setup, tmp_path):
    root, _, _, codes = setup
    other = save_native(tmp_path / "other.pt", factories.random_generator(factories.small_config(32), seed=9))
    with pytest.raises(UserError, match="computed for another generator"):
        run_edit(str(codes), tmp_path / "e", other, root / "dirs" / "directions.npz", ["0=1"], EditOptions(), "cpu")
    forced = run_edit(str(codes), tmp_path / "e", other, root / "dirs" / "directions.npz", ["0=1"], EditOptions(force=True), "cpu")
    assert forced["edited"] == 2


def test_edit_specs(setup):
    root, *_ = setup
    directions = load_directions(root / "dirs" / "directions.npz")
    spec = parse_edit("age=+2", directions)
    assert (spec.index, spec.sign, spec.strengths, spec.layers) == (2, -1, (2.0,), (4, 5))
    assert parse_edit("1=-2,0,2", directions).strengths == (-2.0, 0.0, 2.0)
    assert parse_strengths("-3:3:7", "x") == (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
    for bad, message in [("9=1", "does not exist"), ("smile=1", "no direction labelled 'smile'"), ("0=a", "strengths must be"),
                         ("0", "expected DIRECTION=STRENGTHS"), ("0=1:2", "strengths must be")]:
        with pytest.raises(UserError, match=message):
            parse_edit(bad, directions)


@pytest.mark.skipif(not PORTRAITS.is_dir(), reason=f"real photos not found at {PORTRAITS}")
def test_paste_back_changes_the_face_and_nothing_else(tmp_path):
    from alignment.stage import AlignOptions, run_align

    records = []
    run_align(str(PORTRAITS / "obama.jpg"), tmp_path, AlignOptions(), emit=records.append, say=lambda m: None)
    meta = json.loads(Path(records[0]["meta"]).read_text())
    photo = read_photo(PORTRAITS / "obama.jpg").rgb
    edited_crop = 255 - read_rgb(Path(records[0]["aligned"]))  # a drastic "edit": the negative
    for mask in ("face", "crop"):
        result, alpha = paste_back(photo, edited_crop, np.array(meta["quad"]), np.array(meta["landmarks"]), mask)
        outside = alpha == 0
        assert outside.mean() > 0.5
        assert np.array_equal(result[outside], photo[outside])
        inside = alpha > 0.99
        assert inside.sum() > 1000
        assert np.abs(result[inside].astype(int) - photo[inside].astype(int)).mean() > 40
        # the eyes (landmarks 36-47) are inside the edited region
        eyes = np.array(meta["landmarks"])[36:48].round().astype(int)
        assert (alpha[eyes[:, 1], eyes[:, 0]] > 0.99).all()
    face_alpha = paste_back(photo, edited_crop, np.array(meta["quad"]), np.array(meta["landmarks"]), "face")[1]
    crop_alpha = paste_back(photo, edited_crop, np.array(meta["quad"]), np.array(meta["landmarks"]), "crop")[1]
    assert (face_alpha > 0).sum() < (crop_alpha > 0).sum()


def test_mp4_sweep_plays_back_and_forth(setup, tmp_path):
    import cv2

    root, _, checkpoint, codes = setup
    run_edit(str(codes / "face_0.npy"), tmp_path, checkpoint, root / "dirs" / "directions.npz", ["1=-1:1:4"],
             EditOptions(animate="mp4"), "cpu")
    video = cv2.VideoCapture(str(tmp_path / "face_0" / "dir01.mp4"))
    frames = 0
    while video.read()[0]:
        frames += 1
    assert frames == 4 + 2  # forward 4, then back through the 2 inner strengths
