"""Predicting with an exported model: ``OnnxModel`` over onnxruntime.

This module imports neither torch nor any other part of sktransfer: it needs
numpy, onnxruntime and, for a text model, the ``tokenizers`` package. It can
be copied beside an exported ``.onnx`` file and loaded on its own (e.g. with
``importlib``) where sktransfer, scikit-learn and torch are not installed.

An exported graph runs from raw input to prediction (see
``sktransfer.to_onnx``); its ONNX metadata (keys ``sktransfer.*``) tell this
module what the input is (image layout and size, the number of table
columns, or the tokeniser of a text model), the class labels and the task.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

import numpy as np

INSTALL_HINT = "pip install 'sktransfer[onnx]'"

# ONNX metadata keys written by sktransfer.to_onnx
META_FORMAT = "sktransfer.format"
META_ESTIMATOR = "sktransfer.estimator"
META_TASK = "sktransfer.task"  # "classifier", "regressor" or "transformer"
META_CLASSES = "sktransfer.classes"  # JSON: {"values": [...], "dtype": "<U3"}
META_Y_NDIM = "sktransfer.y_ndim"  # a regressor's y: 1-D (outputs raveled) or 2-D
META_INPUT = "sktransfer.input"  # JSON: what the graph's input is (see _Input)
META_TOKENIZER = "sktransfer.tokenizer"  # JSON: {"file" | "json", "max_length", ...}
META_KEEP_FLOAT = "sktransfer.keep_float"  # JSON: node names quantization leaves alone
META_VERSION = "sktransfer.version"
FORMAT_VERSION = "1"

# names of the graph's inputs and outputs (scikit-learn's converters' names)
LABEL, PROBABILITIES, VARIABLE, FEATURES = "label", "probabilities", "variable", "features"
INPUT_IDS, ATTENTION_MASK = "input_ids", "attention_mask"
# texts per run of a text graph: sorted by length, so that little padding is computed
TEXT_BATCH = 32


def require(module: str, what: str = "ONNX export and inference"):
    """Import ``module``, or raise an ImportError that says what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        kind = ModuleNotFoundError if isinstance(error, ModuleNotFoundError) else ImportError
        raise kind(f"{what} needs the {module.split('.')[0]!r} package ({error}): "
                   f"{INSTALL_HINT}.", name=error.name) from error


def tokenizer_path(model_path: str) -> str:
    """Where the tokeniser of a text model exported to ``model_path`` is
    written: beside it, ``<name>.tokenizer.json`` (``model.onnx`` ->
    ``model.tokenizer.json``)."""
    root, ext = os.path.splitext(os.fspath(model_path))
    return (root if ext == ".onnx" else os.fspath(model_path)) + ".tokenizer.json"


def load_tokenizer(settings: dict, model_dir: str | None = None):
    """A ``tokenizers.Tokenizer`` that tokenises as the fitted text model did:
    special tokens added, truncated at ``max_length`` tokens, padded (on the
    right, with the pad token) to the longest text of each batch.

    ``settings`` is the model's ``sktransfer.tokenizer`` metadata: the
    tokeniser file beside the model (``file``, relative to ``model_dir``) or
    the tokeniser itself (``json``), and ``max_length``, ``pad_id``,
    ``pad_token``.
    """
    tokenizers = require("tokenizers", "tokenising texts for an exported text model")
    if "json" in settings:
        tokenizer = tokenizers.Tokenizer.from_str(settings["json"])
    else:
        path = settings["file"]
        if model_dir is not None and not os.path.isabs(path):
            path = os.path.join(model_dir, path)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"the tokeniser of this text model, {path!r}, is missing: to_onnx writes it "
                "beside the .onnx file; copy both together.")
        tokenizer = tokenizers.Tokenizer.from_file(path)
    tokenizer.no_padding()
    tokenizer.enable_truncation(int(settings["max_length"]),
                                direction=settings.get("truncation_side", "right"))
    tokenizer.enable_padding(pad_id=int(settings["pad_id"]), pad_token=settings["pad_token"],
                             direction=settings.get("padding_side", "right"))
    return tokenizer


def tokenize(tokenizer, texts) -> dict:
    """``{"input_ids", "attention_mask"}`` (int64 arrays of shape
    ``(n_texts, longest)``) of ``texts`` (a list of strings)."""
    texts = _check_texts(texts)
    encoded = tokenizer.encode_batch(texts)
    return {INPUT_IDS: np.array([e.ids for e in encoded], dtype=np.int64),
            ATTENTION_MASK: np.array([e.attention_mask for e in encoded], dtype=np.int64)}


def _check_texts(texts) -> list:
    if isinstance(texts, (str, bytes)):
        raise TypeError("X must be a collection of texts, got a single string; wrap it in a "
                        "list: [text].")
    if hasattr(texts, "tolist") and not isinstance(texts, list):
        texts = texts.tolist()
    texts = list(texts)
    if texts and isinstance(texts[0], list) and len(texts[0]) == 1:
        texts = [t[0] for t in texts]  # a one-column table
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is a {type(text).__name__}, not a string.")
    if not texts:
        raise ValueError("X holds no texts; at least one is needed.")
    return texts


class _Input:
    """What the graph's input is, from the ``sktransfer.input`` metadata (or,
    for a graph without it, from its single input), and how ``X`` becomes
    the graph's feeds."""

    _NUMPY = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32,
              "tensor(double)": np.float64, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(string)": object}

    def __init__(self, session, meta: dict, model_dir: str | None):
        self.spec = json.loads(meta[META_INPUT]) if META_INPUT in meta else {}
        self.kind = self.spec.get("kind", "tabular")
        self.inputs = session.get_inputs()
        self.tokenizer = None
        if self.kind == "text":
            self.settings = json.loads(meta[META_TOKENIZER])
            self.tokenizer = load_tokenizer(self.settings, model_dir)
            self.pad_id = int(self.settings["pad_id"])

    def pad(self):
        """The tokeniser's padding back on (to each batch's longest text)."""
        self.tokenizer.enable_padding(pad_id=self.pad_id, pad_token=self.settings["pad_token"],
                                      direction=self.settings.get("padding_side", "right"))

    def feeds(self, X) -> dict:
        if self.kind == "text":
            return tokenize(self.tokenizer, X)
        if self.kind == "images":
            return {self.inputs[0].name: self._images(X)}
        if len(self.inputs) != 1:
            raise ValueError(f"this graph has {len(self.inputs)} inputs; use run_feeds "
                             "with a dict of arrays.")
        return {self.inputs[0].name: self._table(X)}

    def _dtype(self):
        return self._NUMPY.get(self.inputs[0].type, np.float32)

    def _table(self, X) -> np.ndarray:
        if hasattr(X, "to_numpy"):
            X = X.to_numpy()
        array = np.asarray(X, dtype=self._dtype())
        if array.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {array.shape}.")
        expected = self.spec.get("n_features")
        if expected is not None and array.shape[1] != expected:
            raise ValueError(f"X has {array.shape[1]} features, but the exported model takes "
                             f"{expected}.")
        return array

    def _images(self, X) -> np.ndarray:
        if isinstance(X, (list, tuple)) and X and not isinstance(X[0], (np.ndarray, list)):
            raise TypeError(
                "the exported graph takes one numpy array of images "
                f"({self._describe()}); read image files into such an array first.")
        array = np.asarray(X)
        shape = tuple(self.spec["shape"])
        if array.ndim != len(shape) + 1 or tuple(array.shape[1:]) != shape:
            raise ValueError(
                f"X has shape {array.shape}, but the exported graph takes images of shape "
                f"(N, {', '.join(map(str, shape))}) ({self._describe()}), as the estimator "
                "was fitted on; resize them to that size first.")
        if self.spec["dtype"] == "uint8":
            if array.dtype.kind == "f":
                raise TypeError(
                    f"X holds float images, but the estimator was fitted on {self._describe()}: "
                    "pass uint8 images (0-255).")
            if array.dtype != np.uint8:
                if array.size and (array.min() < 0 or array.max() > 255):
                    raise ValueError("integer images must hold values in [0, 255].")
                array = array.astype(np.uint8)
            return np.ascontiguousarray(array)
        if array.dtype.kind != "f":
            raise TypeError(f"X holds {array.dtype} images, but the estimator was fitted on "
                            f"{self._describe()}: pass float images in [0, 1].")
        return np.ascontiguousarray(array, dtype=np.float32)

    def _describe(self) -> str:
        return f"{self.spec['layout']} {self.spec['dtype']} images"


def _split(X, batch_size: int):
    """``X`` in consecutive parts of at most ``batch_size`` samples."""
    n = len(X)
    for start in range(0, n, batch_size):
        yield X[start:start + batch_size]


class OnnxModel:
    """Predict with a model exported by :func:`sktransfer.to_onnx`, through
    onnxruntime only (no torch, no scikit-learn).

    The graph runs from raw input to prediction: image arrays in the layout
    and size the estimator was fitted on, table rows, or texts (tokenised
    here with the ``tokenizers`` package and the tokeniser file written
    beside the model).

    Parameters
    ----------
    model : str, path-like or bytes
        The ``.onnx`` file written by ``to_onnx`` (or its bytes; a text
        model's tokeniser is then read from the metadata, where ``to_onnx``
        called without a ``path`` puts it).
    threads : int or None, default=None
        Threads onnxruntime runs one batch on (``intra_op_num_threads``);
        None lets onnxruntime decide (one per physical core).
    batch_size : int, default=256
        Samples per call of the graph; larger inputs run in parts.
    providers : list of str or None, default=None
        onnxruntime execution providers; None: the CPU.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels of a classifier, with the dtype the estimator had
        (strings, ints, bools...).
    task : str
        "classifier", "regressor" or "transformer".
    input_kind : str
        "images", "text" or "tabular".
    metadata : dict
        The model's ``sktransfer.*`` (and other) ONNX metadata.
    session : onnxruntime.InferenceSession
        The session that runs the graph.

    Examples
    --------
    >>> from sktransfer import OnnxModel  # doctest: +SKIP
    >>> model = OnnxModel("digits.onnx")  # doctest: +SKIP
    >>> model.predict(images)  # doctest: +SKIP
    """

    def __init__(self, model, *, threads: int | None = None, batch_size: int = 256,
                 providers=None):
        ort = require("onnxruntime", "OnnxModel")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only (not a note per unused constant)
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        if hasattr(model, "SerializeToString"):  # an onnx.ModelProto
            model = model.SerializeToString()
        self.path = None if isinstance(model, bytes) else os.fspath(model)
        self.session = ort.InferenceSession(
            model, sess_options=options, providers=providers or ["CPUExecutionProvider"])
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.batch_size = int(batch_size)
        self.threads = threads
        model_dir = os.path.dirname(os.path.abspath(self.path)) if self.path else None
        self._input = _Input(self.session, self.metadata, model_dir)
        self.input_kind = self._input.kind
        self._outputs = [o.name for o in self.session.get_outputs()]
        self.task = self.metadata.get(META_TASK) or self._guess_task()
        if META_CLASSES in self.metadata:
            classes = json.loads(self.metadata[META_CLASSES])
            self.classes_ = np.asarray(classes["values"], dtype=np.dtype(classes["dtype"]))

    def _guess_task(self) -> str:
        if LABEL in self._outputs:
            return "classifier"
        return "regressor" if self._outputs == [VARIABLE] else "transformer"

    def __repr__(self):
        where = self.path or "<bytes>"
        name = self.metadata.get(META_ESTIMATOR, "model")
        return f"OnnxModel({where!r}: {name}, {self.task} on {self.input_kind})"

    # -- running the graph ---------------------------------------------------------------

    def feeds(self, X) -> dict:
        """The graph's inputs for ``X``, as :meth:`run` passes them to the
        session.

        Parameters
        ----------
        X : images, table or texts
            As the exported estimator's ``predict`` takes them.

        Returns
        -------
        feeds : dict
            Input name -> array: the images or table in the graph's dtype,
            or for texts the token ids and attention mask.
        """
        return self._input.feeds(X)

    def tokenize(self, texts) -> dict:
        """Token ids and attention mask of ``texts`` as the text model reads
        them, without torch or transformers.

        Parameters
        ----------
        texts : list of str
            The texts.

        Returns
        -------
        feeds : dict
            ``{"input_ids", "attention_mask"}``: int64 arrays of shape
            ``(n_texts, length)``, padded to the longest text (at most the
            model's ``max_length`` tokens).
        """
        if self._input.tokenizer is None:
            raise ValueError("this is not a text model; it has no tokeniser.")
        return tokenize(self._input.tokenizer, texts)

    def run(self, X, outputs=None) -> dict:
        """Every output of the graph (or those named in ``outputs``) for
        ``X``, in parts of ``batch_size`` samples.

        Parameters
        ----------
        X : images, table or texts
            As the exported estimator's ``predict`` takes them (images as
            one numpy array).
        outputs : list of str or None, default=None
            Output names; None: all.

        Returns
        -------
        results : dict
            Output name -> array over all samples.
        """
        names = list(outputs or self._outputs)
        if self.input_kind == "text" and self._input.settings.get("padding_side",
                                                                  "right") == "right":
            return self._run_texts(_check_texts(X), names)
        parts = [self.session.run(names, self.feeds(part)) for part in self._parts(X)]
        return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(names)}

    def _run_texts(self, texts: list, names: list) -> dict:
        """Texts tokenised once, then run in batches of similar lengths (by
        token count, at most ``TEXT_BATCH`` texts), each padded to its own
        longest text: the padding the attention masks out is not computed
        (with padding on the right, a text's outputs do not depend on its
        batch), and the results are put back in the texts' order."""
        tokenizer = self._input.tokenizer
        tokenizer.no_padding()
        try:
            encoded = tokenizer.encode_batch(texts)
        finally:
            self._input.pad()
        order = np.argsort([len(e.ids) for e in encoded], kind="stable")
        step = max(1, min(self.batch_size, TEXT_BATCH))
        results = {name: [None] * len(texts) for name in names}
        for start in range(0, len(texts), step):
            chunk = order[start:start + step]
            width = max(len(encoded[i].ids) for i in chunk)
            ids = np.full((len(chunk), width), self._input.pad_id, dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                n = len(encoded[i].ids)
                ids[row, :n], mask[row, :n] = encoded[i].ids, encoded[i].attention_mask
            out = self.session.run(names, {INPUT_IDS: ids, ATTENTION_MASK: mask})
            for name, values in zip(names, out):
                for row, i in enumerate(chunk):
                    results[name][i] = values[row]
        return {name: np.stack(rows) for name, rows in results.items()}

    def _parts(self, X):
        if self.input_kind == "text":
            X = _check_texts(X)
        elif hasattr(X, "to_numpy"):
            X = X.to_numpy()
        elif not isinstance(X, np.ndarray) and self.input_kind != "images":
            X = np.asarray(X)
        if len(X) == 0:
            raise ValueError("X holds no samples; at least one is needed.")
        return _split(X, self.batch_size)

    def _output(self, X, name: str, method: str):
        if name not in self._outputs:
            raise AttributeError(f"this {self.task} graph has no {name!r} output, so no "
                                 f"{method}; its outputs are {self._outputs}.")
        return self.run(X, [name])[name]

    # -- scikit-learn's methods ------------------------------------------------------------

    def predict(self, X) -> np.ndarray:
        """Predicted labels (a classifier, from ``classes_``) or targets (a
        regressor), as the exported estimator's ``predict``.

        Parameters
        ----------
        X : images, table or texts
            As the estimator's ``predict`` takes them.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Predictions.
        """
        if self.task == "classifier":
            labels = self._output(X, LABEL, "predict")
            if hasattr(self, "classes_"):
                labels = labels.astype(self.classes_.dtype)
            return labels
        if self.task != "regressor":
            raise AttributeError(f"a {self.task} has no predict; use transform.")
        y = self._output(X, VARIABLE, "predict").astype(np.float64)
        if self.metadata.get(META_Y_NDIM, "1") == "1" and y.ndim == 2 and y.shape[1] == 1:
            return y.ravel()
        return y

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : images, table or texts
            As the estimator's ``predict_proba`` takes them.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            float64 (computed in float32 by the graph).
        """
        return self._output(X, PROBABILITIES, "predict_proba").astype(np.float64)

    def transform(self, X) -> np.ndarray:
        """Features of a transformer (``TransferFeatures``, or a Pipeline of
        transformers).

        Parameters
        ----------
        X : images, table or texts
            As the estimator's ``transform`` takes them.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
            float64 (computed in float32 by the graph).
        """
        if self.task != "transformer":
            raise AttributeError(f"a {self.task} has no transform; use predict.")
        name = FEATURES if FEATURES in self._outputs else self._outputs[0]
        return self._output(X, name, "transform").astype(np.float64)

    def score(self, X, y) -> float:
        """Accuracy (a classifier) or R² (a regressor) of ``predict(X)``.

        Parameters
        ----------
        X : images, table or texts
            Samples.
        y : array-like
            True labels or targets.

        Returns
        -------
        score : float
            As the estimator's ``score``.
        """
        predicted = self.predict(X)
        y = np.asarray(y)
        if self.task == "classifier":
            return float(np.mean(predicted == y))
        y = y.reshape(predicted.shape).astype(np.float64)
        residual = ((y - predicted) ** 2).sum(axis=0)
        total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
        return float(np.mean(1 - residual / np.where(total > 0, total, 1.0)))

    def __getstate__(self) -> Any:
        raise TypeError("an OnnxModel holds an onnxruntime session; pickle its .onnx file "
                        "instead (OnnxModel(path) loads it again).")
