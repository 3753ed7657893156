"""A fitted network's prediction path as an ONNX graph: the input handling
the datasets do (image scaling, resizing, cropping, channel order and
normalisation; a table's dtype; a text's packed ids and mask), the network
in eval mode, and the outputs predict computes from it, traced by torch's
TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``, exact
for these networks and quick) with a dynamic batch axis (and a dynamic
token axis for texts).

The image resize is exact: torchvision's antialiased bilinear resize and the
centre crop are linear and separable, so they are the products
``rows @ image @ cols`` with matrices computed by running that very resize
on basis images; no ONNX ``Resize`` (whose antialiasing differs) is involved.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from .features import cut_module, pool

# node-name scope of the input handling, which quantization leaves in float
INPUT_SCOPE = "sktransfer_input"


class OnnxExportFailed(Exception):
    """The exporter refused the network; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageInput:
    """The graph's image input: ``layout`` ("NHW", "NHWC" or "NCHW"), size,
    channels and dtype ("uint8": 0-255, "float32": [0, 1])."""

    layout: str
    height: int
    width: int
    channels: int
    dtype: str

    @property
    def shape(self) -> list:
        """The shape of one image in the graph's input."""
        if self.layout == "NHW":
            return [self.height, self.width]
        if self.layout == "NHWC":
            return [self.height, self.width, self.channels]
        return [self.channels, self.height, self.width]


@dataclass(frozen=True)
class TableInput:
    """The graph's table input: ``n_features`` columns of ``dtype``."""

    n_features: int
    dtype: str  # "float32" or "float64"


@dataclass(frozen=True)
class TextInput:
    """The graph's text inputs: token ids and attention mask (int64)."""


def resize_matrices(height: int, width: int, size: int):
    """``(rows, cols)`` with ``rows @ image @ cols`` equal to what the image
    datasets do to one ``height x width`` channel: resize the shorter side to
    ``size`` (antialiased bilinear), then crop the centre ``size x size``.
    ``rows`` is ``(size, height)``, ``cols`` ``(width, size)``."""
    return _axis_weights(height, width, size, 0).T.contiguous(), \
        _axis_weights(width, height, size, 1)


def _axis_weights(n: int, other: int, size: int, axis: int, chunk: int = 64):
    """``(n, size)``: the weight of input row (``axis`` 0) or column (1) ``i``
    in each output row / column, read off the resize and crop of basis
    images that are one along row / column ``i`` and zero elsewhere (the
    whole 2-D operation on full-size images: torch's antialiased kernel
    treats an axis of length one differently)."""
    parts = []
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        basis = torch.zeros(count, n)
        basis[torch.arange(count), start + torch.arange(count)] = 1.0
        images = (basis[:, :, None].expand(count, n, other) if axis == 0
                  else basis[:, None, :].expand(count, other, n)).contiguous()
        out = TF.center_crop(TF.resize(images, size, antialias=True), [size, size])
        parts.append(out[:, :, 0] if axis == 0 else out[:, 0, :])
    return torch.cat(parts)


class ImagePreprocess(nn.Module):
    """Raw image arrays -> the normalised ``(N, 3, size, size)`` float
    tensor ``ImageDataset`` feeds the network (scale to [0, 1], resize and
    crop, grey to three channels, normalise)."""

    def __init__(self, spec: ImageInput, prep, size: int):
        super().__init__()
        self.layout = spec.layout
        self.scale = 1.0 / 255.0 if spec.dtype == "uint8" else None
        self.grey = spec.channels == 1
        self.resize = (spec.height, spec.width) != (size, size)
        if self.resize:
            rows, cols = resize_matrices(spec.height, spec.width, size)
            self.register_buffer("rows", rows)
            self.register_buffer("cols", cols)
        self.register_buffer("mean", torch.tensor(prep.mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(prep.std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        x = x.float()
        if self.scale is not None:
            x = x * self.scale
        if self.layout == "NHW":
            x = x.unsqueeze(1)
        elif self.layout == "NHWC":
            x = x.permute(0, 3, 1, 2)
        if self.resize:
            x = torch.matmul(torch.matmul(self.rows, x), self.cols)
        if self.grey:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std


class TablePreprocess(nn.Module):
    """Table rows in the network's dtype."""

    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, x):
        return x.to(self.dtype)


class TextPreprocess(nn.Module):
    """Token ids and attention mask packed as the text trunk reads them."""

    def forward(self, input_ids, attention_mask):
        return torch.stack([input_ids, attention_mask.to(input_ids.dtype)], dim=1)


class ClassifierOutputs(nn.Module):
    """``(index of the highest logit, softmax probabilities)``."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x):
        logits = self.network(x)
        return logits.argmax(dim=1), torch.softmax(logits, dim=1).float()

    output_names = ("index", "probabilities")


class RegressorOutputs(nn.Module):
    """Outputs mapped back to the units of ``y`` (float64)."""

    def __init__(self, network: nn.Module, mean, scale):
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64).reshape(1, -1))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float64).reshape(1, -1))

    def forward(self, x):
        return self.network(x).double() * self.scale + self.mean

    output_names = ("variable",)


class FeatureOutputs(nn.Module):
    """Pooled trunk output after ``stage`` stages (None: the trunk's own),
    as ``TransferFeatures`` computes it (in float32, returned as float64 as
    ``transform`` returns it, so that the scikit-learn steps after it
    compute in float64 as they do in Python). A stage's output is taken
    by a forward hook; the layers after it do not reach the outputs and are
    left out of the graph."""

    def __init__(self, trunk: nn.Module, stages: list, stage):
        super().__init__()
        self.trunk = trunk
        self.cut = cut_module(trunk, stages, stage)
        self._seen = []
        if self.cut is not None:
            self.cut.register_forward_hook(lambda module, inputs, output: self._seen.append(output))

    def forward(self, x):
        self._seen.clear()
        output = self.trunk(x)
        if self.cut is not None:
            output = self._seen[-1]
        pooler = getattr(self.trunk, "pool_stage_output", pool)
        return pooler(output).float().double()

    output_names = ("features",)


class Graph(nn.Module):
    """Input handling, then the network and its outputs."""

    def __init__(self, inputs: nn.Module, outputs: nn.Module):
        super().__init__()
        setattr(self, INPUT_SCOPE, inputs)
        self.outputs = outputs

    def forward(self, *x):
        return self.outputs(getattr(self, INPUT_SCOPE)(*x))


def _input_module(spec, preprocessing, image_size, dtype: torch.dtype) -> nn.Module:
    if isinstance(spec, ImageInput):
        return ImagePreprocess(spec, preprocessing, image_size)
    if isinstance(spec, TextInput):
        return TextPreprocess()
    return TablePreprocess(dtype)


def _example(spec, batch: int = 2):
    """Inputs to trace with, and the input names and dynamic axes."""
    if isinstance(spec, ImageInput):
        dtype = torch.uint8 if spec.dtype == "uint8" else torch.float32
        return ((torch.zeros(batch, *spec.shape, dtype=dtype),), ["X"],
                {"X": {0: "N"}})
    if isinstance(spec, TextInput):
        ids = torch.full((batch, 8), 100, dtype=torch.int64)
        mask = torch.ones(batch, 8, dtype=torch.int64)
        mask[1, 5:] = 0
        return ((ids, mask), ["input_ids", "attention_mask"],
                {"input_ids": {0: "N", 1: "L"}, "attention_mask": {0: "N", 1: "L"}})
    dtype = getattr(torch, spec.dtype)
    return (torch.zeros(batch, spec.n_features, dtype=dtype),), ["X"], {"X": {0: "N"}}


def _cpu_copy(module: nn.Module) -> nn.Module:
    """The network on the CPU in eval mode, copied: the estimator's own
    module is never touched (its device, mode, hooks)."""
    copied = copy.deepcopy(module).cpu()
    return copied.eval()


def network_graph(module, *, task: str, spec, preprocessing=None, image_size=None,
                  y_mean=None, y_scale=None, opset: int = 18):
    """``(onnx.ModelProto, tracer notes)`` of a fitted ``TransferModule``:
    input handling, the network, then for ``task`` "classifier" the
    outputs ``index`` and ``probabilities``, for "regressor" ``variable``."""
    network = _cpu_copy(module)
    dtype = next(network.parameters()).dtype
    if task == "classifier":
        outputs = ClassifierOutputs(network)
    else:
        outputs = RegressorOutputs(network, y_mean, y_scale)
    graph = Graph(_input_module(spec, preprocessing, image_size, dtype), outputs)
    return export(graph, spec, outputs.output_names, opset)


def trunk_graph(trunk, stages, stage, *, spec, preprocessing=None, image_size=None,
                opset: int = 18):
    """``(onnx.ModelProto, tracer notes)`` of ``TransferFeatures``'
    embedder: input handling, the trunk up to ``stage``, pooling; output
    ``features``."""
    trunk = _cpu_copy(trunk)
    dtype = next(trunk.parameters()).dtype
    outputs = FeatureOutputs(trunk, stages, stage)
    graph = Graph(_input_module(spec, preprocessing, image_size, dtype), outputs)
    return export(graph, spec, outputs.output_names, opset)


_UNSUPPORTED = re.compile(r"Exporting the operator '([^']+)'[^\n]*")


def export(graph: nn.Module, spec, output_names, opset: int):
    """Trace ``graph`` into an ONNX ``ModelProto``. Raises
    ``OnnxExportFailed`` with the exporter's reason when it refuses (an
    operator with no ONNX equivalent, say); the tracer's warnings
    (data-dependent control flow...) are returned with the model."""
    import onnx

    example, input_names, dynamic = _example(spec)
    dynamic.update({name: {0: "N"} for name in output_names})
    buffer = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught, torch.no_grad(), _quiet_stdout():
        warnings.simplefilter("always")
        try:
            torch.onnx.export(graph, example, buffer, dynamo=False, opset_version=opset,
                              input_names=input_names, output_names=list(output_names),
                              dynamic_axes=dynamic, do_constant_folding=True)
        except Exception as error:  # the exporter raises several types
            raise OnnxExportFailed(_reason(error, opset)) from error
    traced = [TracerNote(str(w.message).splitlines()[0], w.filename, w.lineno) for w in caught
              if issubclass(w.category, torch.jit.TracerWarning)]
    return onnx.load_model_from_string(buffer.getvalue()), traced


@dataclass(frozen=True)
class TracerNote:
    """A warning of torch's tracer: what it saw and where."""

    message: str
    filename: str
    lineno: int

    @property
    def in_library(self) -> bool:
        """Raised inside torch, torchvision or transformers, whose modules
        are written to trace (a shape test such as transformers' ``is_causal``
        check), not in the user's own network code."""
        parts = self.filename.replace("\\", "/").split("/")
        return any(lib in parts for lib in ("torch", "torchvision", "transformers"))

    @property
    def control_flow(self) -> bool:
        """A tensor turned into a Python bool: an ``if`` on the data, which
        the trace fixes to the branch the traced input took."""
        return "Python boolean" in self.message

    def __str__(self):
        return f"{self.message} ({self.filename}:{self.lineno})"


@contextlib.contextmanager
def _quiet_stdout():
    """The C++ side of the exporter prints its whole IR graph to the process's
    standard output when it fails (its log switch stays on once an export
    has run); the reason it raises is enough, so file descriptor 1 goes to a
    scratch file meanwhile."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no real stdout: nothing to hide
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as scratch:
        os.dup2(scratch.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def _reason(error: Exception, opset: int) -> str:
    text = str(error)
    found = _UNSUPPORTED.search(text)
    if found:
        return (f"the operator {found.group(1)!r} has no ONNX export at opset {opset} "
                f"({found.group(0).strip()})")
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return f"{type(error).__name__}: {first[:500]}"


def tokenizer_settings(prep) -> dict:
    """The fitted text model's tokeniser as JSON (``tokenizers`` format,
    with its truncation at ``max_length`` and padding to the longest text
    set, so that any ``tokenizers`` runtime reproduces it) and the settings
    ``sktransfer._onnx_runtime.load_tokenizer`` applies."""
    tokenizer = prep.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise OnnxExportFailed(
            f"the text backbone's tokeniser ({type(tokenizer).__name__}) is not a fast "
            "(tokenizers-based) tokeniser, which the exported model needs to tokenise "
            "without Python transformers")
    from tokenizers import Tokenizer

    copied = Tokenizer.from_str(backend.to_str())
    side = getattr(tokenizer, "padding_side", "right")
    cut = getattr(tokenizer, "truncation_side", "right")
    copied.no_padding()
    copied.enable_truncation(int(prep.max_length), direction=cut)
    copied.enable_padding(pad_id=int(tokenizer.pad_token_id), pad_token=tokenizer.pad_token,
                          direction=side)
    return {"json": copied.to_str(), "max_length": int(prep.max_length),
            "pad_id": int(tokenizer.pad_token_id), "pad_token": tokenizer.pad_token,
            "padding_side": side, "truncation_side": cut}
