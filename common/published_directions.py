"""Directions published by other methods, read as they were published: InterFaceGAN boundaries and
GANSpace components. `common/directions_file.py` turns what is read here into a directions file, so
`edit -d`, `ui -d` and `factorize --from` take them like SeFa's own.

InterFaceGAN (Shen et al., CVPR 2020) publishes one linear SVM boundary per attribute, a unit normal
saved as a `[1, dim]` `.npy`, edited as `code + s * n`. The file names say the attribute and the space,
in two conventions: the original `stylegan_ffhq_age_w_boundary.npy` (`_w`: W space, none: Z;
`_c_gender`: conditioned on gender) and the later folders `stylegan2_ffhq_w/boundary_Smiling.npy`.

GANSpace (Härkönen et al., NeurIPS 2020) saves a PCA as an `.npz` with `lat_comp` [K, 1, dim] (unit
components in the latent space), `lat_mean`, `lat_stdev` [K] and the activation-space arrays; its
sliders move `code + sigma * lat_stdev[k] * lat_comp[k]`, so one unit of strength here is one standard
deviation, as there. Its file name ends in `_w` when the PCA was made in W (`use_w`); without it the
components were regressed into Z and `lat_stdev` is all ones.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.safe_arrays import BadArray, load_npy, load_npz_member

GANSPACE_KEYS = ("lat_comp", "lat_stdev")  # the members that make an .npz GANSpace's (with act_comp, var_ratio, ...)
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_CLASSIC_BOUNDARY = re.compile(r"^(?P<model>[a-z0-9]+_[a-z0-9]+)_(?P<attr>.+?)(?P<w>_w)?_boundary$")
_FOLDER_BOUNDARY = re.compile(r"^boundary_(?P<attr>.+)$")
_MODEL_FOLDER = re.compile(r"^(?P<model>[a-z0-9]+_[a-z0-9]+)_(?P<space>[wz])$", re.IGNORECASE)
_GANSPACE_W = re.compile(r"_w(_seed\d+)?$")


class NotPublishedDirections(ValueError):
    """The file is not one of the published formats read here; the message says why in words."""


@dataclass(frozen=True)
class PublishedDirections:
    vectors: np.ndarray  # [K, dim], unit rows
    scales: np.ndarray  # [K]: what one unit of strength moves along each (the method's own unit)
    latent_space: str  # sefa-edit's name of the codes they edit: "W+" (a W direction moves every entry) or "Z"
    method: str  # "interfacegan" | "ganspace"
    labels: dict[str, int]  # names from the file name -> direction index
    sources: list[str]  # per direction, where it comes from, in words
    trained_for: str | None  # the publisher's name of the generator ("stylegan_ffhq", "stylegan2-ffhq")


def is_ganspace_archive(member_names: set[str]) -> bool:
    return all(f"{key}.npy" in member_names for key in GANSPACE_KEYS)


def read_interfacegan_boundary(path: Path) -> PublishedDirections:
    """One InterFaceGAN boundary; its attribute and space from the file (or folder) name."""
    path = Path(path)
    attribute, space, model = _boundary_name(path)
    try:
        boundary = load_npy(path).astype(np.float64)
    except BadArray as exc:
        raise NotPublishedDirections(f"not an InterFaceGAN boundary ({exc})") from None
    if boundary.ndim == 2 and boundary.shape[0] == 1:
        boundary = boundary[0]
    if boundary.ndim != 1 or boundary.size < 2:
        raise NotPublishedDirections(f"an InterFaceGAN boundary is one vector [1, dim]; this holds shape {list(boundary.shape)}")
    norm = float(np.linalg.norm(boundary))
    if norm == 0:
        raise NotPublishedDirections("the boundary is all zeros: it points nowhere")
    label = attribute if _LABEL.match(attribute) else f"boundary_{attribute}"[:64]
    return PublishedDirections(
        vectors=(boundary / norm)[None], scales=np.array([norm]), latent_space=space, method="interfacegan",
        labels={label: 0} if _LABEL.match(label) else {},
        sources=[f"InterFaceGAN boundary {path.name} ({attribute}, {'W' if space == 'W+' else 'Z'} space)"],
        trained_for=model)


def _boundary_name(path: Path) -> tuple[str, str, str | None]:
    """(attribute, latent space, model) from InterFaceGAN's names, or the reason they cannot be told."""
    classic = _CLASSIC_BOUNDARY.match(path.stem)
    if classic:
        return classic["attr"].lower(), "W+" if classic["w"] else "Z", classic["model"]
    folder = _MODEL_FOLDER.match(path.parent.name)
    in_folder = _FOLDER_BOUNDARY.match(path.stem)
    if in_folder and folder:
        return in_folder["attr"].lower(), "W+" if folder["space"].lower() == "w" else "Z", folder["model"].lower()
    raise NotPublishedDirections(
        "cannot tell whether this InterFaceGAN boundary is in Z or W: keep the publisher's name "
        "(stylegan_ffhq_age_w_boundary.npy for W, ..._boundary.npy for Z) or its folder (stylegan2_ffhq_w/boundary_Smiling.npy)")


def read_ganspace_components(path: Path, archive: zipfile.ZipFile) -> PublishedDirections:
    """GANSpace's components from its `.npz` (already opened as `archive`)."""
    path = Path(path)
    try:
        components = load_npz_member(archive, "lat_comp", kinds="f").astype(np.float64)
        stdevs = load_npz_member(archive, "lat_stdev", kinds="f").astype(np.float64).reshape(-1)
    except BadArray as exc:
        raise NotPublishedDirections(f"not GANSpace components ({exc})") from None
    if components.ndim < 2 or components.shape[0] < 1:
        raise NotPublishedDirections(f"GANSpace's lat_comp has shape {list(components.shape)}, expected [K, 1, dim]")
    components = components.reshape(components.shape[0], -1)
    if stdevs.shape != (components.shape[0],):
        raise NotPublishedDirections(f"GANSpace's lat_stdev has {stdevs.size} values for {components.shape[0]} components")
    if not (np.isfinite(components).all() and np.isfinite(stdevs).all()) or (stdevs <= 0).any():
        raise NotPublishedDirections("GANSpace's components or standard deviations are not finite and positive")
    norms = np.linalg.norm(components, axis=1)
    if (norms == 0).any():
        raise NotPublishedDirections(f"GANSpace component {int(np.argmin(norms))} is all zeros")
    in_w = bool(_GANSPACE_W.search(path.stem)) or not np.all(stdevs == 1.0)  # GANSpace leaves Z's stdevs at 1
    return PublishedDirections(
        vectors=components / norms[:, None], scales=stdevs, latent_space="W+" if in_w else "Z", method="ganspace",
        labels={}, sources=[f"GANSpace component {k} of {path.name}" for k in range(len(components))],
        trained_for=path.stem.split("_", 1)[0] or None)
