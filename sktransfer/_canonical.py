"""Settings as plain values: equal settings, equal descriptions (for
recognising a fit seen before). Torch-free."""

from __future__ import annotations

import dataclasses

import numpy as np


def canonical(value):
    """``value`` as nested tuples of plain values that equal settings share
    (estimator-style objects by class and parameters, dataclasses by fields,
    arrays and tensors by value, classes and functions by qualified name, a
    network by its class: its weights are digested apart); ``TypeError`` for
    a value without one."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(canonical(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((repr(k), canonical(v)) for k, v in value.items())))
    if isinstance(value, np.ndarray):
        if value.dtype == object:  # by the values, not the pointers
            return ("array", value.shape, tuple(canonical(v) for v in value.ravel().tolist()))
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (_qualified(type(value)), tuple(
            (f.name, canonical(getattr(value, f.name))) for f in dataclasses.fields(value)))
    if hasattr(value, "get_params"):
        return (_qualified(type(value)), canonical(value.get_params(deep=False)))
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a tensor
        try:
            return canonical(value.detach().cpu().numpy())
        except (TypeError, RuntimeError) as error:  # e.g. bfloat16
            raise TypeError(f"no stable description of {value.dtype} tensors") from error
    if hasattr(value, "state_dict"):  # a network: its weights are digested with the fit's
        return ("network", _qualified(type(value)))
    if isinstance(value, type) or callable(value):
        return ("callable", _qualified(value))
    raise TypeError(f"no stable description of {type(value).__name__}")


def _qualified(value) -> str:
    name = f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"
    if "<" in name or name == ".":  # a lambda or a function defined in a function
        raise TypeError(f"no stable description of {value!r}")
    return name
