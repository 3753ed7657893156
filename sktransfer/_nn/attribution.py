"""Attribution of a fitted network's outputs to its inputs: Grad-CAM at the
trunk's last spatial stage, Integrated Gradients and gradient x input, in
plain torch; and the cascading randomisation of a network's parameters that
the model-randomisation sanity check compares against.

Every function leaves the network as it found it: it runs in eval mode
(restored after), differentiates with ``torch.autograd.grad`` (no ``.grad``
is written to any parameter) and never changes ``requires_grad``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._options import IMAGES, TEXT
from .backbones import resolve_member
from .data import ImageDataset
from .inference import evaluating
from .text import TextCollate

@dataclass
class NetworkInputs:
    """A batch of inputs as the network reads them, and what maps the
    attributions back to the caller's inputs: each image's ``(H, W)`` or
    each text's tokens."""

    tensor: torch.Tensor
    sizes: list | None = None
    tokens: list | None = None


def image_inputs(images, prep, size: int) -> NetworkInputs:
    """Validated ``images`` resized and normalised as the fitted network
    reads them (the estimator's own preprocessing)."""
    dataset = ImageDataset(images, prep, size)
    tensors, sizes = [], []
    for index in range(len(dataset)):
        sizes.append(tuple(dataset._raw(index).shape[-2:]))
        tensors.append(dataset.image(index))
    return NetworkInputs(torch.stack(tensors), sizes=sizes)


def text_inputs(texts, prep) -> NetworkInputs:
    """Validated ``texts`` tokenised as the fitted network reads them, with
    each text's tokens (padding left out)."""
    packed, _ = TextCollate(prep.tokenizer, prep.max_length)([(t, 0) for t in texts.data])
    tokens = [prep.tokenizer.convert_ids_to_tokens(ids[mask > 0].tolist())
              for ids, mask in zip(packed[:, 0], packed[:, 1])]
    return NetworkInputs(packed, tokens=tokens)


def table_inputs(X: np.ndarray, dtype: str) -> NetworkInputs:
    return NetworkInputs(torch.tensor(np.asarray(X), dtype=getattr(torch, dtype)))


def _device_and_dtype(module: nn.Module):
    param = next(module.parameters())
    return param.device, param.dtype


def _selected(outputs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Each row's output at its own ``index``."""
    return outputs.gather(1, index.view(-1, 1)).squeeze(1)


# -- images: Grad-CAM ----------------------------------------------------------------


def last_stage_modules(module: nn.Module) -> list:
    """The modules of the trunk's last stage; Grad-CAM's layer is the last
    of them that outputs a feature map (B, C, h, w)."""
    members = [resolve_member(module.trunk, name) for name in module.stages[-1]]
    return [m for m in members if isinstance(m, nn.Module)]


def grad_cam(module: nn.Module, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Grad-CAM maps (N, h, w) at the last spatial layer of the trunk's
    last stage: the ReLU of the feature maps weighted by the spatial mean of
    the target output's gradient."""
    members = last_stage_modules(module)
    captured = []

    def keep(_, __, output):
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            captured.append(output)

    handles = [m.register_forward_hook(keep) for m in members]
    try:
        x = x.detach().requires_grad_(True)  # a frozen trunk still carries gradients
        score = _selected(module(x), index).sum()
    finally:
        for handle in handles:
            handle.remove()
    if not captured:
        raise ValueError(
            "no layer of the trunk's last stage outputs a feature map (B, C, h, w); "
            "Grad-CAM needs one: use method='integrated_gradients'.")
    activations = captured[-1]
    (grads,) = torch.autograd.grad(score, activations)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * activations).sum(1)).detach()


# -- Integrated Gradients and gradient x input -----------------------------------------


def _gradient(forward, inputs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    inputs = inputs.detach().requires_grad_(True)
    score = _selected(forward(inputs), index).sum()
    (grad,) = torch.autograd.grad(score, inputs)
    return grad


def integrated_gradients(forward, x: torch.Tensor, baseline: torch.Tensor, index,
                         n_steps: int, chunk: int) -> torch.Tensor:
    """Integrated Gradients of ``forward``'s output at ``index`` (per row),
    from ``baseline`` to ``x`` (both shaped like ``x``): ``(x - baseline)``
    times the mean gradient at the midpoints of ``n_steps`` equal steps.
    At most ``chunk`` interpolated inputs go through the network at once, so
    memory does not grow with ``n_steps``."""
    alphas = (torch.arange(n_steps, dtype=x.dtype, device=x.device) + 0.5) / n_steps
    total = torch.zeros_like(x)
    per_chunk = max(1, chunk // max(1, len(x)))
    for start in range(0, n_steps, per_chunk):
        a = alphas[start:start + per_chunk]
        shape = (len(a), 1) + (1,) * x.dim()
        path = baseline + a.view(shape) * (x - baseline)  # (steps, N, ...)
        grads = _gradient(forward, path.reshape(-1, *x.shape[1:]), index.repeat(len(a)))
        total += grads.view(len(a), *x.shape).sum(0)
    return (x - baseline) * total / n_steps


def gradient_x_input(forward, x: torch.Tensor, baseline: torch.Tensor, index) -> torch.Tensor:
    """The gradient at ``x`` times ``x - baseline``."""
    return _gradient(forward, x, index) * (x - baseline)


def image_baseline(x: torch.Tensor, prep) -> torch.Tensor:
    """A black image, normalised as the network reads images."""
    mean = torch.tensor(prep.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(prep.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return ((0 - mean) / std).expand_as(x)


# -- text: attributions on the token embeddings ------------------------------------------


class _EmbeddingsSwap:
    """Runs the network from given token embeddings: the trunk's embedding
    stage returns them (with the mask channel) instead of computing its own."""

    def __init__(self, module: nn.Module, packed: torch.Tensor):
        self.module = module
        self.packed = packed
        self.mask = packed[:, 1].unsqueeze(-1)

    def embeddings(self) -> torch.Tensor:
        with torch.no_grad():
            return self.module.trunk.embeddings(self.packed)[..., :-1]

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        repeats = len(hidden) // len(self.packed)
        mask = self.mask.repeat(repeats, 1, 1).to(hidden.dtype)
        stage = self.module.trunk.embeddings

        def replace(_, __, ___):
            return torch.cat([hidden, mask], dim=-1)

        handle = stage.register_forward_hook(replace)
        try:
            return self.module(self.packed.repeat(repeats, 1, 1))
        finally:
            handle.remove()


def text_attributions(module, packed, index, method: str, n_steps: int, chunk: int):
    """Per-token attributions (N, L): the chosen method on the embedding
    stage's output, summed over the hidden dimension."""
    swap = _EmbeddingsSwap(module, packed)
    hidden = swap.embeddings()
    baseline = torch.zeros_like(hidden)
    if method == "integrated_gradients":
        values = integrated_gradients(swap, hidden, baseline, index, n_steps, chunk)
    else:
        values = gradient_x_input(swap, hidden, baseline, index)
    return values.sum(-1) * packed[:, 1].to(values.dtype)


# -- the entry point ---------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """An attribution method and its settings."""

    name: str
    n_steps: int = 32
    batch_size: int = 32


def attribute(module: nn.Module, inputs: NetworkInputs, index: np.ndarray, method: Method,
              kind: str, prep=None) -> torch.Tensor:
    """Raw attributions of ``module``'s outputs at ``index`` (one per input)
    in the network's own input space: (N, h, w) maps for images, (N, L) for
    token rows, (N, n_features) for tables. The inputs go through in
    batches of ``method.batch_size`` (Integrated Gradients' interpolated
    inputs included), so memory does not grow with their number."""
    device, dtype = _device_and_dtype(module)
    index = torch.as_tensor(index, dtype=torch.long)
    size = method.batch_size
    with evaluating(module), torch.enable_grad():
        parts = []
        for start in range(0, len(index), size):
            x = inputs.tensor[start:start + size].to(device)
            x = x.to(dtype) if x.is_floating_point() else x
            rows = index[start:start + size].to(device)
            parts.append(_attribute_batch(module, x, rows, method, kind, prep).cpu())
    return torch.cat(parts)


def _attribute_batch(module, x, index, method: Method, kind: str, prep) -> torch.Tensor:
    if kind == TEXT:
        return text_attributions(module, x, index, method.name, method.n_steps,
                                 method.batch_size)
    if method.name == "gradcam":
        return grad_cam(module, x, index)
    baseline = image_baseline(x, prep) if kind == IMAGES else torch.zeros_like(x)
    if method.name == "integrated_gradients":
        values = integrated_gradients(module, x, baseline, index, method.n_steps,
                                      method.batch_size)
    else:
        values = gradient_x_input(module, x, baseline, index)
    return values.sum(1) if kind == IMAGES else values


def outputs_of(module: nn.Module, inputs: NetworkInputs, batch_size: int) -> torch.Tensor:
    """The network's raw outputs for ``inputs`` (eval mode, no gradients)."""
    device, dtype = _device_and_dtype(module)
    outputs = []
    with evaluating(module), torch.no_grad():
        for start in range(0, len(inputs.tensor), batch_size):
            x = inputs.tensor[start:start + batch_size].to(device)
            outputs.append(module(x.to(dtype) if x.is_floating_point() else x).cpu())
    return torch.cat(outputs)


def to_image_resolution(maps: np.ndarray, sizes: list) -> list:
    """Maps at the network's input size back onto each original image: the
    network read the centre square of the image resized to its size, so a
    map is resized to that square (its sum kept) and placed there, zero
    outside."""
    out = []
    for m, (height, width) in zip(torch.from_numpy(maps), sizes):
        side = min(height, width)
        resized = F.interpolate(m[None, None].double(), size=(side, side), mode="bilinear",
                                align_corners=False)[0, 0]
        total = m.double().sum()
        if resized.sum().abs() > 0:
            resized = resized * (total / resized.sum())
        full = torch.zeros(height, width, dtype=torch.float64)
        top, left = (height - side) // 2, (width - side) // 2
        full[top:top + side, left:left + side] = resized
        out.append(full.numpy())
    return out


# -- randomisation -------------------------------------------------------------------


def randomisation_groups(module: nn.Module) -> list:
    """``(name, modules and parameters)`` of each group that the cascading
    randomisation resets, from the output side: the head, then the trunk's
    stages from the last."""
    groups = [("head", [module.head])]
    for i in reversed(range(len(module.stages))):
        members = [resolve_member(module.trunk, name) for name in module.stages[i]]
        groups.append((f"stage {i}", members))
    return groups


@torch.no_grad()
def randomise(members: list, generator: torch.Generator) -> None:
    """Replace every parameter of ``members`` by a random draw of the same
    scale: a layer that can re-initialise itself does, other parameters are
    drawn from a normal with their own standard deviation."""
    for member in members:
        params = list(member.parameters()) if isinstance(member, nn.Module) else [member]
        for param in params:
            std = float(param.std()) if param.numel() > 1 else 0.0
            if param.dim() >= 2:
                fresh = torch.empty_like(param, device="cpu")
                nn.init.kaiming_uniform_(fresh, a=5 ** 0.5, generator=generator)
            else:
                fresh = torch.randn(param.shape, generator=generator, dtype=param.dtype)
                fresh = fresh * (std if std > 0 else 1.0)
            param.copy_(fresh.to(param.device))


def torch_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))
