"""int8 copies of exported graphs (``quantize_onnx``) and what they change
on the user's data (``compare_quantized``): agreement, accuracy, latency.

Torch-free: onnx and onnxruntime's quantization tools only. The input
handling (image scaling, resizing, normalisation) and the outputs after the
last layer stay in float; the layers are quantized.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import shutil
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from ._onnx_runtime import (
    META_INPUT,
    META_KEEP_FLOAT,
    META_TOKENIZER,
    OnnxModel,
    require,
    tokenizer_path,
)

META_QUANTIZED = "sktransfer.quantized"  # "dynamic" or "static"
MODES = ("dynamic", "static")


def _calibration_reader(quantization, model: OnnxModel, X, batch_size: int):
    """onnxruntime's ``CalibrationDataReader`` over the graph's feeds for
    ``X`` in batches (texts tokenised, images as the graph takes them)."""
    model.batch_size = int(batch_size)
    batches = [model.feeds(part) for part in model._parts(X)]

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self.rest = iter(batches)

        def get_next(self):
            return next(self.rest, None)

        def rewind(self):
            self.rest = iter(batches)

    return Reader()


def quantize_onnx(model, path, *, mode: str = "dynamic", calibration=None,
                  per_channel: bool | None = None, batch_size: int = 32, op_types=None):
    """Write an int8 copy of a graph exported by :func:`to_onnx`.

    Parameters
    ----------
    model : str or path-like
        The float ``.onnx`` file written by ``to_onnx``.
    path : str or path-like
        Where to write the int8 graph (a text model's tokeniser is copied
        beside it).
    mode : {"dynamic", "static"}, default="dynamic"
        "dynamic": int8 weights, activations quantized at run time from
        each batch's range (``onnxruntime.quantization.quantize_dynamic``;
        no data needed; the usual choice for transformers and MLPs).
        "static": int8 weights and activations, the activations' ranges
        calibrated on ``calibration`` (``quantize_static``, QDQ format;
        the usual choice for convolutional networks).
    calibration : images, table or texts, default=None
        Samples as ``predict`` takes them, for ``mode="static"`` (a few
        hundred representative samples; the more, the steadier the ranges).
    per_channel : bool or None, default=None
        One scale per output channel of each weight instead of one per
        tensor. None: per channel for "static" (a MobileNetV2 fine-tuned on
        MNIST kept 95.7 % accuracy of 96.0 % per channel, 74.6 % per
        tensor), per tensor for "dynamic".
    batch_size : int, default=32
        Calibration samples per run of the graph.
    op_types : list of str or None, default=None
        ONNX operator types to quantize; None: onnxruntime's defaults for
        the mode (convolutions, matrix products, additions...), except for
        a text model in "static" mode: there only the products with a
        weight (``MatMul``, ``Gemm``) are quantized, and the attention's
        products of two activations, the embeddings and the normalisations
        stay float (all of them quantized, all-MiniLM-L6-v2 on Rotten
        Tomatoes fell from 0.720 accuracy to 0.488; so, 0.712).

    Returns
    -------
    path : pathlib.Path
        The int8 graph written; :class:`OnnxModel` loads it as it loads the
        float one.

    See Also
    --------
    compare_quantized : Agreement, accuracy and latency of the int8 graph.
    """
    quantization = require("onnxruntime.quantization", "quantize_onnx")
    onnx = require("onnx", "quantize_onnx")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    source = os.fspath(model)
    path = pathlib.Path(path)
    meta = {p.key: p.value for p in onnx.load_model(source, load_external_data=False)
            .metadata_props}
    keep = json.loads(meta.get(META_KEEP_FLOAT, "[]"))
    if per_channel is None:
        per_channel = mode == "static"
    text = json.loads(meta.get(META_INPUT, "{}")).get("kind") == "text"
    if mode == "static" and text and op_types is None:
        op_types = ["MatMul", "Gemm"]
        keep = keep + _activation_products(onnx.load_model(source, load_external_data=False))
    common = dict(per_channel=bool(per_channel), nodes_to_exclude=keep,
                  op_types_to_quantize=list(op_types) if op_types else None,
                  weight_type=quantization.QuantType.QInt8)
    with warnings.catch_warnings(), _quiet_logging():
        warnings.simplefilter("ignore")
        if mode == "dynamic":
            quantization.quantize_dynamic(source, str(path), **common)
        else:
            if calibration is None:
                raise ValueError("mode='static' calibrates the activations' ranges on samples: "
                                 "pass calibration=X (a few hundred samples as predict takes "
                                 "them).")
            reader = _calibration_reader(quantization, OnnxModel(source), calibration,
                                         batch_size)
            quantization.quantize_static(
                source, str(path), reader, quant_format=quantization.QuantFormat.QDQ,
                activation_type=quantization.QuantType.QUInt8,
                calibrate_method=quantization.CalibrationMethod.MinMax, **common)
    _carry_metadata(onnx, source, path, meta, mode)
    return path


def _activation_products(model) -> list:
    """Names of the ``MatMul`` nodes that multiply two activations (an
    attention's queries by its keys, its weights by its values): no weight."""
    constants = {t.name for t in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and not any(i in constants for i in n.input)]


@contextlib.contextmanager
def _quiet_logging():
    """onnxruntime's quantization tools log advice on the root logger
    (pre-process the model first...) at every call: not shown."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _carry_metadata(onnx, source: str, path: pathlib.Path, meta: dict, mode: str):
    """The float graph's metadata on the int8 one, and a text model's
    tokeniser copied beside it."""
    quantized = onnx.load_model(str(path))
    meta = dict(meta, **{META_QUANTIZED: mode})
    if META_TOKENIZER in meta:
        settings = json.loads(meta[META_TOKENIZER])
        if "file" in settings:
            original = os.path.join(os.path.dirname(os.path.abspath(source)), settings["file"])
            copy = tokenizer_path(path)
            if os.path.abspath(original) != os.path.abspath(copy):
                shutil.copyfile(original, copy)
            settings["file"] = os.path.basename(copy)
            meta[META_TOKENIZER] = json.dumps(settings)
    del quantized.metadata_props[:]
    onnx.helper.set_model_props(quantized, meta)
    onnx.save_model(quantized, str(path))


# -- what int8 changes ------------------------------------------------------------------------


def cpu_int8_support() -> dict:
    """The x86 instructions int8 inference speeds up with, from
    ``/proc/cpuinfo`` (Linux; empty elsewhere): VNNI (``avx512_vnni``,
    ``avx_vnni``: int8 dot products in one instruction) and AMX."""
    flags = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    found = sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8", "avx512f", "avx2"})
    return {"flags": found, "vnni": bool({"avx512_vnni", "avx_vnni"} & flags),
            "amx": "amx_int8" in flags}


@dataclass
class QuantizationReport:
    """What an int8 graph changes against its float graph, on the user's data.

    Attributes
    ----------
    n_samples : int
        Samples compared.
    agreement : float or None
        Fraction of samples with the same predicted label (classifiers).
    accuracy_fp32, accuracy_int8 : float or None
        Accuracy (classifiers) or R² (regressors) of each graph, when ``y``
        was given.
    max_abs_diff : float
        Largest |difference| between the graphs' probabilities (or targets,
        or features).
    latency_ms : dict
        ``{batch size: {"fp32": ms, "int8": ms, "speedup": fp32 / int8}}``:
        median milliseconds of one run of the graph on one batch (inputs
        prepared beforehand).
    threads : int or None
        onnxruntime's threads (None: its default).
    cpu : dict
        ``cpu_int8_support()``.
    int8_faster : bool
        Whether int8 is faster at the largest batch size measured.
    verdict : str
        One sentence saying so, and why int8 may not be faster here.
    """

    n_samples: int
    agreement: float | None
    accuracy_fp32: float | None
    accuracy_int8: float | None
    max_abs_diff: float
    latency_ms: dict
    threads: int | None
    cpu: dict
    int8_faster: bool
    verdict: str
    sizes_mb: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self):
        lines = [f"int8 vs fp32 on {self.n_samples} samples"]
        if self.agreement is not None:
            lines.append(f"  same label: {self.agreement:.2%}")
        if self.accuracy_fp32 is not None:
            lines.append(f"  score: fp32 {self.accuracy_fp32:.4f}, int8 {self.accuracy_int8:.4f}")
        lines.append(f"  max |difference| of the outputs: {self.max_abs_diff:.3g}")
        for batch, row in self.latency_ms.items():
            lines.append(f"  batch {batch}: fp32 {row['fp32']:.2f} ms, int8 {row['int8']:.2f} ms "
                         f"(x{row['speedup']:.2f})")
        lines.append(f"  {self.verdict}")
        return "\n".join(lines)


_PAUSE = 0.05  # seconds between one session's runs and the other's


def _latencies(models, feeds: dict, repeats: int, warmup: int, rounds: int = 5) -> list:
    """Median milliseconds of one run of each model on ``feeds``, the runs
    interleaved (``rounds`` rounds of ``repeats / rounds`` runs of each
    model in turn, a short pause between two models' runs, so that one
    session's spinning threads do not slow the other), so that a load on a
    shared machine that comes and goes weighs on every model alike."""
    for model in models:
        for _ in range(warmup):
            model.session.run(None, feeds)
    times = [[] for _ in models]
    per_round = max(1, -(-repeats // rounds))
    for _ in range(rounds):
        for model, spent in zip(models, times):
            time.sleep(_PAUSE)  # the other session's threads stop spinning meanwhile
            for _ in range(per_round):
                start = time.perf_counter()
                model.session.run(None, feeds)
                spent.append(time.perf_counter() - start)
    return [1000.0 * statistics.median(spent) for spent in times]


def _batch(X, size: int):
    """The first ``size`` samples of ``X`` (repeated when it has fewer)."""
    if isinstance(X, (list, tuple)):
        return [X[i % len(X)] for i in range(size)]
    X = X.to_numpy() if hasattr(X, "to_numpy") else np.asarray(X)
    return X[np.arange(size) % len(X)]


def _outputs(model: OnnxModel, X) -> tuple:
    """``(labels or None, values compared)``."""
    if model.task == "classifier":
        values = model.predict_proba(X) if "probabilities" in model._outputs else None
        return model.predict(X), values
    if model.task == "regressor":
        return None, model.predict(X)
    return None, model.transform(X)


def compare_quantized(fp32, int8, X, y=None, *, batch_sizes=(1, 64), threads=None,
                      repeats: int = 30, warmup: int = 3) -> QuantizationReport:
    """Measure what the int8 graph changes on ``X``: labels, accuracy,
    outputs and latency against the float graph, and say whether int8 is
    faster on this CPU.

    Parameters
    ----------
    fp32, int8 : str, path-like or OnnxModel
        The float graph (``to_onnx``) and its int8 copy (``quantize_onnx``).
    X : images, table or texts
        Samples as ``predict`` takes them (held-out data, not the
        calibration samples).
    y : array-like or None, default=None
        True labels (or targets): the report then holds each graph's
        accuracy (or R²).
    batch_sizes : tuple of int, default=(1, 64)
        Batch sizes whose latency is measured.
    threads : int or None, default=None
        onnxruntime threads for both graphs (None: onnxruntime's default).
    repeats : int, default=30
        Timed runs per batch size and graph, the two graphs' runs
        interleaved; the median is reported (so a busy machine's slow runs
        do not count, and a load that comes and goes weighs on both).
    warmup : int, default=3
        Untimed runs first.

    Returns
    -------
    report : QuantizationReport
        ``int8_faster`` and ``verdict`` say whether int8 pays off here; a
        ``UserWarning`` is issued when it does not.

    See Also
    --------
    quantize_onnx : Writes the int8 graph.
    """
    models = [m if isinstance(m, OnnxModel) else OnnxModel(m, threads=threads)
              for m in (fp32, int8)]
    (labels_a, values_a), (labels_b, values_b) = (_outputs(m, X) for m in models)
    agreement = None if labels_a is None else float(np.mean(labels_a == labels_b))
    diff = 0.0 if values_a is None else float(np.max(np.abs(values_a - values_b)))
    scores = (None, None)
    if y is not None:
        scores = tuple(m.score(X, y) for m in models)
    latency = {}
    for size in batch_sizes:
        feeds = models[0].feeds(_batch(X, int(size)))
        a, b = _latencies(models, feeds, repeats, warmup)
        latency[int(size)] = {"fp32": a, "int8": b, "speedup": a / b}
    cpu = cpu_int8_support()
    largest = max(latency)
    faster = latency[largest]["speedup"] > 1.0
    ops = {node.op_type for node in _graph_nodes(models[1])}
    verdict = _verdict(latency[largest]["speedup"], largest, cpu, "ConvInteger" in ops)
    sizes = {}
    for name, m in zip(("fp32", "int8"), models):
        if m.path is not None:
            sizes[name] = os.path.getsize(m.path) / 1e6
    report = QuantizationReport(len(X), agreement, scores[0], scores[1], diff, latency,
                                threads, cpu, faster, verdict, sizes)
    if not faster:
        warnings.warn(verdict, UserWarning, stacklevel=2)
    return report


def _graph_nodes(model: OnnxModel) -> list:
    """The nodes of an OnnxModel's graph (none when it was loaded from bytes)."""
    if model.path is None:
        return []
    onnx = require("onnx", "compare_quantized")
    return list(onnx.load_model(model.path, load_external_data=False).graph.node)


def _verdict(speedup: float, batch: int, cpu: dict, conv_integer: bool = False) -> str:
    if conv_integer:
        why = ("its convolutions were quantized dynamically (ConvInteger), which onnxruntime "
               "runs with a slow reference kernel on CPUs; quantize convolutional networks "
               "with mode='static'")
    elif cpu["vnni"] or cpu["amx"]:
        why = ("this CPU has VNNI int8 instructions, so what is left is the cost of "
               "quantizing and dequantizing activations between layers")
    elif cpu["flags"]:
        why = ("this CPU has no VNNI instructions (int8 dot products take several AVX2 / "
               "AVX-512 instructions each), so int8 gains little over float")
    else:
        why = "this CPU's int8 instructions are unknown"
    if speedup > 1.0:
        return f"int8 is {speedup:.2f}x faster than fp32 at batch {batch} on this CPU."
    return (f"int8 is NOT faster than fp32 on this CPU: x{speedup:.2f} at batch {batch}; "
            f"{why}. Keep the fp32 graph here, or try the other quantization mode.")
