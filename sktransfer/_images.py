"""Validation of image inputs, before any tensor is made.

Accepted: numpy (or array-like) uint8/integer ``(N, H, W, C)``, grayscale
``(N, H, W)``, float ``(N, C, H, W)`` in [0, 1]; a list or array of image file
paths; a list of PIL images. Paths are only checked for existence here and are
read batch by batch later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

CHANNELS = (1, 3)


@dataclass(frozen=True)
class CheckedImages:
    """Validated images.

    ``data`` is an ``(N, C, H, W)`` array view (no copy) when ``storage`` is
    "array", or a list of paths / PIL images when ``storage`` is "files".
    ``scale`` maps stored values to [0, 1].
    """

    storage: str
    data: object
    layout: str
    channels: int | None
    scale: float = 1.0

    def __len__(self):
        return len(self.data)

    @property
    def signature(self) -> tuple:
        """What must agree between fit and predict."""
        return (self.layout, self.channels)

    def describe(self) -> str:
        if self.storage == "files":
            return "image files / PIL images"
        return f"{self.layout} arrays with {self.channels} channel(s)"


def _is_pil(obj) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(obj, Image.Image)


def _is_file_item(obj) -> bool:
    return isinstance(obj, (str, os.PathLike)) or _is_pil(obj)


def _check_files(items: list) -> CheckedImages:
    bad = [type(item).__name__ for item in items if not _is_file_item(item)]
    if bad:
        raise TypeError(
            "a list of images must hold file paths (str or Path) or PIL images; "
            f"found {bad[0]}. Pass numeric images as one numpy array instead."
        )
    missing = [os.fspath(p) for p in items
               if not _is_pil(p) and not os.path.isfile(os.fspath(p))]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        hint = ""
        if all(isinstance(m, str) and (" " in m or not os.path.splitext(m)[1])
               for m in missing[:5]):
            hint = (" If these are texts, not paths, use a text backbone, e.g. "
                    "backbone='all-MiniLM-L6-v2'.")
        raise ValueError(f"image files not found: {shown}{more}.{hint}")
    return CheckedImages("files", list(items), "files", None)


def _item_kind(item) -> str:
    """How an error names the kind of one item of X."""
    if isinstance(item, (str, os.PathLike)):
        return "file path"
    if _is_pil(item):
        return "PIL image"
    if isinstance(item, np.ndarray):
        return "numpy array"
    return type(item).__name__


def _check_one_kind(items) -> None:
    """Refuse a list that mixes images to resize one by one (paths, PIL
    images) with numeric arrays: which is meant depends on the order."""
    is_file = [_is_file_item(item) for item in items]
    if all(is_file) or not any(is_file):
        return
    odd = is_file.index(not is_file[0])
    first, other = _item_kind(items[0]), _item_kind(items[odd])
    if is_file[0] and not isinstance(items[odd], (np.ndarray, list, tuple)):
        return  # neither an image nor an array: _check_files names its type
    raise TypeError(
        f"X mixes kinds of images: item 0 is a {first} but item {odd} is a "
        f"{other}. Pass one kind: file paths or PIL images (arrays convert with "
        "PIL.Image.fromarray), which are resized image by image; or one numpy "
        "array of equally sized images."
    )


def _check_same_size(items) -> None:
    """Refuse a list of arrays of different shapes, naming two of them."""
    shapes = [_shape(item) for item in items]
    odd = next((i for i, shape in enumerate(shapes) if shape != shapes[0]), None)
    if odd is None:
        return
    raise ValueError(
        f"the images in X differ in size: item 0 has shape {shapes[0]} but item "
        f"{odd} has shape {shapes[odd]}. Resize them to one size first, or pass "
        "them as PIL images (PIL.Image.fromarray) or file paths, which are "
        "resized image by image."
    )


def _shape(item):
    """``np.shape`` of one item of X, which may itself be ragged."""
    try:
        return np.shape(item)
    except ValueError:  # a ragged nested list
        return "ragged"


def _layout(array: np.ndarray) -> tuple[str, np.ndarray]:
    """Name the layout of an image array and return an (N, C, H, W) view."""
    if array.ndim == 3:
        return "NHW", array[:, None]
    if array.ndim != 4:
        hint = (" Reshape flattened images to (N, H, W) first."
                if array.ndim == 2 else "")
        raise ValueError(
            f"image arrays must have shape (N, H, W), (N, H, W, C) or (N, C, H, W) "
            f"with C in {CHANNELS}; got an array with shape {array.shape}.{hint}"
        )
    last_is_channel = array.shape[-1] in CHANNELS
    second_is_channel = array.shape[1] in CHANNELS
    prefer_last = array.dtype.kind in "ui"  # integer images are usually HWC
    if last_is_channel and (prefer_last or not second_is_channel):
        return "NHWC", array.transpose(0, 3, 1, 2)
    if second_is_channel:
        return "NCHW", array
    raise ValueError(
        f"cannot find the channel axis of images with shape {array.shape}: "
        f"expected (N, H, W, C) or (N, C, H, W) with C in {CHANNELS}. Drop the "
        "alpha channel of RGBA images (X[..., :3])."
    )


def _check_values(array: np.ndarray) -> float:
    """Check pixel values and return the scale that maps them to [0, 1]."""
    kind = array.dtype.kind
    if kind == "b" or kind not in "uif":
        raise TypeError(
            f"image arrays must be integer (0-255) or float (0-1); got dtype {array.dtype}."
        )
    if kind == "f":
        if not np.isfinite(array).all():
            raise ValueError("images contain NaN or infinity; clean or impute them first.")
        lo, hi = float(array.min()), float(array.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"float images must hold values in [0, 1]; got [{lo:g}, {hi:g}]. Pass "
                "uint8 images (0-255) or divide by 255; do not normalise them "
                "yourself, sktransfer applies the backbone's normalisation."
            )
        return 1.0
    lo, hi = int(array.min()), int(array.max())
    if lo < 0 or hi > 255:
        raise ValueError(
            f"integer images must hold values in [0, 255]; got [{lo}, {hi}]."
        )
    return 1.0 / 255.0


def check_images(X) -> CheckedImages:
    """Validate images and name their layout; raise errors a user can act on."""
    if X is None:
        raise ValueError("X is None; pass images (an array, file paths or PIL images).")
    if isinstance(X, (str, os.PathLike)) or _is_pil(X):
        raise TypeError(
            "X is a single image; pass a list of image paths or PIL images, or an "
            "array of images, even for one image: [X]."
        )
    if hasattr(X, "to_numpy") and getattr(X, "ndim", 2) == 1:
        X = list(X.to_numpy())  # a pandas Series of paths
    if isinstance(X, np.ndarray) and X.dtype.kind == "O" and X.ndim == 1:
        X = list(X)  # objects (paths, PIL images, arrays): checked one by one
    if isinstance(X, (list, tuple)) and X:
        _check_one_kind(X)
        if _is_file_item(X[0]):
            return _check_files(list(X))
        _check_same_size(X)
    if isinstance(X, np.ndarray) and X.dtype.kind in "OUS" and (
            X.dtype.kind in "US" or (X.size and _is_file_item(X.flat[0]))):
        if X.ndim != 1:
            raise ValueError(
                f"an array of image paths must be 1-D; got shape {X.shape}."
            )
        return _check_files(list(X))
    try:
        array = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"could not read X ({type(X).__name__}) as images: {exc}"
        ) from None
    if array.dtype.kind == "O":
        raise TypeError(
            "X could not be read as a numeric image array; pass one array of "
            "equally sized images, or a list of file paths or PIL images."
        )
    if array.ndim >= 1 and array.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={array.shape}) while a minimum "
            "of 1 is required."
        )
    layout, nchw = _layout(array)
    if 0 in nchw.shape[2:]:
        raise ValueError(f"images have an empty spatial dimension: shape {array.shape}.")
    scale = _check_values(array)
    return CheckedImages("array", nchw, layout, int(nchw.shape[1]), scale)


def check_same_layout(fitted_signature: tuple, images: CheckedImages, fitted_desc: str):
    if images.signature != fitted_signature:
        raise ValueError(
            f"X holds {images.describe()}, but the estimator was fitted on "
            f"{fitted_desc}. Pass images in the same layout as in fit."
        )
