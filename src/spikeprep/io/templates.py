"""The stimulus templates in the bucket (``natural_scene_templates/``,
``natural_movie_templates/``), kept in the cache under AllenSDK's names, so an existing
AllenSDK cache is used as it is.

Scenes are 8-bit grayscale TIFF images (read with Pillow, which matplotlib already
brings; AllenSDK needs SimpleITK for them); movies are NumPy arrays (frames × rows ×
columns, uint8) saved under AllenSDK's ``natural_movie_<n>.h5`` name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import DownloadError, SpikeprepError

__all__ = ["template_path", "fetch_template", "read_scene", "read_movie"]

_KINDS = {"scene": ("natural_scene_templates", "natural_scene_{n}.tiff"),
          "movie": ("natural_movie_templates", "natural_movie_{n}.h5")}


def template_path(cache: str | Path, kind: str, number: int) -> Path:
    """Where template ``number`` of ``kind`` ("scene" or "movie") lives in a cache folder."""
    folder, name = _KINDS[kind]
    return Path(cache) / folder / name.format(n=int(number))


def fetch_template(cache: str | Path, kind: str, number: int, base_url: str | None = None, *,
                   offline: bool = False) -> Path:
    """The template's file in the cache, downloaded (verified, resumable) when missing.

    Raises
    ------
    SpikeprepError
        Offline and not in the cache, or the bucket has no such template (one line).
    """
    from .download import base_url as resolve
    from .download import download_file

    path = template_path(cache, kind, number)
    if path.exists():
        return path
    if offline:
        raise SpikeprepError(f"{path}: not in the cache (offline)")
    folder, _ = _KINDS[kind]
    try:
        download_file(f"{resolve(base_url)}{folder}/{path.name}", path, attempts=4, max_wait=5.0)
    except DownloadError as exc:
        raise SpikeprepError(f"natural {kind} template {number}: {exc}") from exc
    return path


def read_scene(path: str | Path) -> np.ndarray:
    """A natural scene as AllenSDK returns it: rows × columns, uint8."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image)
    except OSError as exc:
        raise SpikeprepError(f"{path}: not a readable TIFF image ({exc})") from exc


def read_movie(path: str | Path) -> np.ndarray:
    """A natural movie as AllenSDK returns it: frames × rows × columns."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SpikeprepError(f"{path}: not a NumPy array file ({exc})") from exc
