"""``to_onnx``: a fitted estimator, or a scikit-learn Pipeline holding
sktransfer estimators, as one ONNX graph from raw input to prediction.

The conversion runs through skl2onnx: sktransfer's estimators are
registered with it (a parser, a shape calculator and a converter each), so
the scikit-learn steps of a Pipeline convert as skl2onnx converts them and
each network becomes a subgraph traced by torch's exporter
(``sktransfer._nn.onnx_export``). The linear transfer estimators convert to
a few ONNX operators (their source Pipeline's preprocessing first, when they
read through one). Outputs are named as scikit-learn's converters name them:
``label`` and ``probabilities`` for a classifier, ``variable`` for a
regressor, ``features`` for ``TransferFeatures``.

Needs the ``onnx`` extra (onnx, onnxruntime, skl2onnx); torch is imported
only when a network is exported.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np
from sklearn.base import is_classifier, is_regressor
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._base import BaseTransferEstimator
from ._classifier import PretrainedClassifier
from ._exceptions import OnnxExportError
from ._features import TransferFeatures
from ._images import check_images
from ._linear import (
    TransferLogisticRegression,
    TransferLogisticRegressionCV,
    TransferRidge,
    TransferRidgeCV,
)
from ._onnx_runtime import (
    ATTENTION_MASK,
    FEATURES,
    FORMAT_VERSION,
    INPUT_IDS,
    LABEL,
    META_CLASSES,
    META_ESTIMATOR,
    META_FORMAT,
    META_INPUT,
    META_KEEP_FLOAT,
    META_TASK,
    META_TOKENIZER,
    META_VERSION,
    META_Y_NDIM,
    PROBABILITIES,
    VARIABLE,
    OnnxModel,
    require,
    tokenizer_path,
)
from ._options import IMAGES, TABULAR, TEXT
from ._regressor import TransferRegressor

# opsets of the graphs written: the TorchScript exporter goes up to 20;
# 18 has every operator these networks use (LayerNormalization included)
OPSET = 18
ML_OPSET = 3

_NETWORKS = (PretrainedClassifier, TransferRegressor)
_LINEAR_CLASSIFIERS = (TransferLogisticRegression, TransferLogisticRegressionCV)
_LINEAR_REGRESSORS = (TransferRidge, TransferRidgeCV)
_OURS = (*_NETWORKS, TransferFeatures, *_LINEAR_CLASSIFIERS, *_LINEAR_REGRESSORS)

# largest |difference| to_onnx's check accepts between the estimator and the
# graph on X_sample: on probabilities, and relative to the outputs' scale for
# regression targets and features
CHECK_TOLERANCE = 1e-4


def _export():
    """The torch side, imported on first use."""
    from ._nn import onnx_export

    return onnx_export


# -- what the graph's input is -----------------------------------------------------------


def _first_step(model):
    """The estimator that reads the raw input of ``model``."""
    if isinstance(model, Pipeline):
        return _first_step(model.steps[0][1])
    steps = getattr(model, "_source_steps", None)
    if isinstance(model, (*_LINEAR_CLASSIFIERS, *_LINEAR_REGRESSORS)) and steps is not None:
        return _first_step(steps)
    return model


def _final_step(model):
    if isinstance(model, Pipeline):
        return _final_step(model.steps[-1][1])
    return model


def _input_kind(step) -> str:
    if isinstance(step, BaseTransferEstimator):
        return step.input_kind_
    if isinstance(step, TransferFeatures):
        return step._input_kind()
    return TABULAR


def _image_input(step, X_sample) -> dict:
    """The image input of the graph, from ``X_sample`` (checked against the
    layout ``step`` was fitted on)."""
    if step.input_signature_[0] == "files":
        raise OnnxExportError(
            f"the {type(step).__name__} was fitted on image files / PIL images, which it "
            "resizes one by one; the exported graph takes one array of equally sized images. "
            "Fit it on an image array (e.g. np.stack of the decoded images) to export it.")
    checked = check_images(X_sample)
    if checked.storage != "array":
        raise OnnxExportError(
            "X_sample must be a numpy array of images (as the graph will take them), not "
            "file paths or PIL images.")
    if checked.signature != tuple(step.input_signature_):
        raise OnnxExportError(
            f"X_sample holds {checked.describe()}, but the {type(step).__name__} was fitted "
            f"on {step.input_description_}; pass images in the layout it was fitted on.")
    array = np.asarray(X_sample)
    height, width = (int(s) for s in checked.data.shape[2:])
    dtype = "float32" if array.dtype.kind == "f" else "uint8"
    return {"kind": IMAGES, "layout": checked.layout, "height": height, "width": width,
            "channels": int(checked.channels), "dtype": dtype,
            "shape": [int(s) for s in array.shape[1:]]}


def _table_input(X_sample) -> dict:
    if hasattr(X_sample, "to_numpy"):
        X_sample = X_sample.to_numpy()
    array = np.asarray(X_sample)
    if array.ndim != 2:
        raise OnnxExportError(f"X_sample must be a 2-D table (n_samples, n_features); got "
                              f"shape {array.shape}.")
    if array.dtype.kind not in "fiub":
        raise OnnxExportError(f"X_sample must be numeric for a tabular model; got dtype "
                              f"{array.dtype}.")
    dtype = "float64" if array.dtype == np.float64 else "float32"
    return {"kind": TABULAR, "n_features": int(array.shape[1]), "dtype": dtype}


def input_description(model, X_sample) -> dict:
    """The ``sktransfer.input`` metadata of ``model``'s graph."""
    step = _first_step(model)
    kind = _input_kind(step)
    if kind == IMAGES:
        return _image_input(step, X_sample)
    if kind == TEXT:
        return {"kind": TEXT}
    return _table_input(X_sample)


def _initial_types(spec: dict) -> list:
    types = require("skl2onnx.common.data_types", "sktransfer.to_onnx")
    if spec["kind"] == TEXT:
        return [(INPUT_IDS, types.Int64TensorType([None, None])),
                (ATTENTION_MASK, types.Int64TensorType([None, None]))]
    if spec["kind"] == IMAGES:
        tensor = types.UInt8TensorType if spec["dtype"] == "uint8" else types.FloatTensorType
        return [("X", tensor([None, *spec["shape"]]))]
    tensor = types.DoubleTensorType if spec["dtype"] == "float64" else types.FloatTensorType
    return [("X", tensor([None, spec["n_features"]]))]


def _graph_input(operator, step):
    """The ``onnx_export`` input spec of a network step, from the types of
    its operator's inputs."""
    ox = _export()
    kind = _input_kind(step)
    if kind == TEXT:
        return ox.TextInput()
    var = operator.inputs[0]
    dtype = _numpy_dtype(var.type)
    if kind == TABULAR:
        return ox.TableInput(int(var.type.shape[1]), dtype)
    layout, channels = step.input_signature_
    shape = [int(s) for s in var.type.shape[1:]]
    height, width = shape[1:3] if layout == "NCHW" else shape[:2]
    return ox.ImageInput(layout, height, width, int(channels),
                         "uint8" if dtype == "uint8" else "float32")


def _numpy_dtype(tensor_type) -> str:
    name = type(tensor_type).__name__
    return {"UInt8TensorType": "uint8", "DoubleTensorType": "float64",
            "Int64TensorType": "int64"}.get(name, "float32")


# -- labels --------------------------------------------------------------------------------


def _label_values(classes: np.ndarray):
    """``(onnx element type, values)`` of the graph's label tensor: strings
    stay strings, integers (and bools, and integral floats) become int64,
    other floats float64."""
    from onnx import TensorProto

    if classes.dtype.kind in "OUS":
        if not all(isinstance(c, str) for c in classes.tolist()):
            raise OnnxExportError(
                "the class labels mix strings and other values; ONNX labels are all strings "
                "or all numbers.")
        return TensorProto.STRING, [str(c) for c in classes.tolist()]
    if classes.dtype.kind in "iub" or (classes.dtype.kind == "f"
                                       and np.all(np.mod(classes, 1) == 0)):
        return TensorProto.INT64, classes.astype(np.int64)
    if classes.dtype.kind == "f":
        return TensorProto.DOUBLE, classes.astype(np.float64)
    raise OnnxExportError(f"class labels of dtype {classes.dtype} cannot be ONNX labels.")


def _label_type(classes, n):
    from onnx import TensorProto

    types = require("skl2onnx.common.data_types", "sktransfer.to_onnx")
    element, _ = _label_values(np.asarray(classes))
    return {TensorProto.STRING: types.StringTensorType, TensorProto.INT64: types.Int64TensorType,
            TensorProto.DOUBLE: types.DoubleTensorType}[element]([n])


def _add_labels(scope, container, classes, index: str, label: str):
    """``label = classes[index]``."""
    element, values = _label_values(np.asarray(classes))
    name = scope.get_unique_variable_name("classes")
    container.add_initializer(name, element, [len(values)], values)
    container.add_node("Gather", [name, index], [label], axis=0,
                       name=scope.get_unique_operator_name("Labels"))


# -- skl2onnx parsers and shape calculators --------------------------------------------------


def _declare(scope, model, inputs, outputs):
    """The operator of ``model`` and its output variables, declared with
    the types the shape calculators give them (the parsers of the steps
    after it read them before those run)."""
    from skl2onnx._supported_operators import sklearn_operator_name_map

    operator = scope.declare_local_operator(sklearn_operator_name_map[type(model)], model)
    operator.inputs = inputs
    for name, tensor_type in outputs:
        operator.outputs.append(scope.declare_local_variable(name, tensor_type([])))
    return operator.outputs


def _output_types(model, inputs):
    """The element types of ``model``'s outputs (label first)."""
    types = require("skl2onnx.common.data_types", "sktransfer.to_onnx")
    same = type(inputs[0].type)  # the linear models compute in their input's type
    if isinstance(model, TransferFeatures):
        return [types.DoubleTensorType]
    if isinstance(model, TransferRegressor):
        return [types.DoubleTensorType]
    if isinstance(model, _LINEAR_REGRESSORS):
        return [same]
    label = type(_label_type(model.classes_, 1))
    return [label, same if isinstance(model, _LINEAR_CLASSIFIERS) else types.FloatTensorType]


def _parse_source_steps(scope, model, inputs, custom_parsers):
    """A linear transfer estimator reads ``X`` through its source Pipeline's
    preprocessing when it has one: those steps come first."""
    steps = getattr(model, "_source_steps", None)
    if steps is None:
        return inputs
    from skl2onnx._parse import _parse_sklearn

    return _parse_sklearn(scope, steps, inputs, custom_parsers=custom_parsers)


def _parse_classifier(scope, model, inputs, custom_parsers=None):
    inputs = _parse_source_steps(scope, model, inputs, custom_parsers)
    return _declare(scope, model, inputs,
                    zip([LABEL, PROBABILITIES], _output_types(model, inputs)))


def _parse_regressor(scope, model, inputs, custom_parsers=None):
    inputs = _parse_source_steps(scope, model, inputs, custom_parsers)
    return _declare(scope, model, inputs, zip([VARIABLE], _output_types(model, inputs)))


def _parse_features(scope, model, inputs, custom_parsers=None):
    return _declare(scope, model, inputs, zip([FEATURES], _output_types(model, inputs)))


def _n_rows(operator):
    return operator.inputs[0].get_first_dimension()


def _classifier_shapes(operator):
    types = require("skl2onnx.common.data_types", "sktransfer.to_onnx")
    model, n = operator.raw_operator, _n_rows(operator)
    operator.outputs[0].type = _label_type(model.classes_, n)
    proba = types.FloatTensorType
    if isinstance(model, _LINEAR_CLASSIFIERS):  # computed in the input's type
        proba = type(operator.inputs[0].type)
    operator.outputs[1].type = proba([n, len(model.classes_)])


def _regressor_shapes(operator):
    types = require("skl2onnx.common.data_types", "sktransfer.to_onnx")
    model, n = operator.raw_operator, _n_rows(operator)
    if isinstance(model, TransferRegressor):
        operator.outputs[0].type = types.DoubleTensorType([n, len(np.ravel(model._y_mean))])
    else:
        width = np.atleast_2d(model.coef_).shape[0]
        operator.outputs[0].type = type(operator.inputs[0].type)([n, width])


def _feature_shapes(operator):
    types = require("skl2onnx.common.data_types", "sktransfer.to_onnx")
    model = operator.raw_operator
    operator.outputs[0].type = types.DoubleTensorType([_n_rows(operator),
                                                       int(model._n_features_out)])


# -- converters ----------------------------------------------------------------------------


def _splice(scope, container, model, inputs: list, outputs: dict):
    """Copy the nodes and initializers of the ONNX ``model`` into the
    skl2onnx ``container``: its inputs become ``inputs`` (names, in order),
    its outputs the names ``outputs`` maps them to, and every other name is
    made unique."""
    from onnx import NodeProto, numpy_helper

    prefix = scope.get_unique_variable_name("net")
    graph = model.graph
    rename = dict(zip((i.name for i in graph.input), inputs))
    rename.update(outputs)

    def name(value: str) -> str:
        return value if value == "" else rename.get(value, f"{prefix}/{value}")

    for tensor in graph.initializer:
        array = numpy_helper.to_array(tensor)
        container.add_initializer(name(tensor.name), tensor.data_type, list(tensor.dims),
                                  numpy_helper.from_array(array, name(tensor.name)))
    version = {op.domain: op.version for op in model.opset_import}
    for node in graph.node:
        copied = NodeProto()
        copied.CopyFrom(node)
        copied.name = f"{prefix}{node.name}" if node.name.startswith("/") else \
            f"{prefix}/{node.name}"
        del copied.input[:]
        del copied.output[:]
        inputs_ = list(node.input)
        while inputs_ and inputs_[-1] == "":  # an omitted last optional input
            inputs_.pop()
        copied.input.extend(name(i) for i in inputs_)
        copied.output.extend(name(o) for o in node.output)
        container.nodes.append(copied)
        container.node_domain_version_pair_sets.add((node.domain, version.get(node.domain,
                                                                               OPSET)))


def _exported(build, description: str):
    """Run the torch exporter; its refusals become ``OnnxExportError``, and
    so does an ``if`` on the data in the network's own code (the trace
    would keep one branch for every input)."""
    ox = _export()
    try:
        model, traced = build()
    except ox.OnnxExportFailed as failure:
        raise OnnxExportError(f"cannot export {description} to ONNX: {failure.reason}.") \
            from failure
    branches = [note for note in traced if note.control_flow and not note.in_library]
    if branches:
        raise OnnxExportError(
            f"cannot export {description} to ONNX: its forward branches on the values of a "
            f"tensor (a tensor turned into a Python bool at {branches[0].filename}:"
            f"{branches[0].lineno}), and a traced graph keeps, for every input, the branch "
            "the traced input took. Write the branch with tensor operations (torch.where) "
            "so that it traces.")
    for note in traced:
        if not note.in_library:
            warnings.warn(f"while exporting {description}, torch's tracer warned: {note}",
                          UserWarning, stacklevel=2)
    _TRACED.extend(str(note) for note in traced)
    return model


_TRACED: list = []  # the tracer's warnings during the current to_onnx


def _describe(model) -> str:
    backbone = getattr(model, "backbone", None)
    name = getattr(backbone, "name", None) or (backbone if isinstance(backbone, str)
                                               else type(backbone).__name__)
    return f"the {type(model).__name__} (backbone {name})"


def _convert_network(scope, operator, container):
    model = operator.raw_operator
    ox = _export()
    result = model._fit_result
    if result.batching.precision != "32":
        warnings.warn(
            f"the {type(model).__name__} predicts with {result.batching.precision} autocast "
            f"(precision={model.precision!r}); its ONNX graph computes in float32, so the two "
            "differ by that rounding.", UserWarning, stacklevel=2)
    task = "classifier" if isinstance(model, PretrainedClassifier) else "regressor"
    graph = _exported(lambda: ox.network_graph(
        result.net.module_, task=task, spec=_graph_input(operator, model),
        preprocessing=result.preprocessing, image_size=result.image_size,
        y_mean=getattr(model, "_y_mean", None), y_scale=getattr(model, "_y_scale", None),
        opset=container.target_opset), _describe(model))
    inputs = [v.full_name for v in operator.inputs]
    if task == "regressor":
        _splice(scope, container, graph, inputs, {VARIABLE: operator.outputs[0].full_name})
        return
    index = scope.get_unique_variable_name("index")
    _splice(scope, container, graph, inputs,
            {"index": index, PROBABILITIES: operator.outputs[1].full_name})
    _add_labels(scope, container, model.classes_, index, operator.outputs[0].full_name)


def _convert_features(scope, operator, container):
    model = operator.raw_operator
    ox = _export()
    embedder = model._embedder
    graph = _exported(lambda: ox.trunk_graph(
        embedder.trunk, embedder.stages, embedder.stage, spec=_graph_input(operator, model),
        preprocessing=embedder.preprocessing, image_size=embedder.image_size,
        opset=container.target_opset), _describe(model))
    _splice(scope, container, graph, [v.full_name for v in operator.inputs],
            {FEATURES: operator.outputs[0].full_name})


def _convert_linear(scope, operator, container):
    """``X @ coef.T + intercept``, then for a classifier the logistic (two
    classes) or softmax probabilities and the labels, as the estimator's
    ``predict_proba`` / ``predict`` compute them, in the input's float type."""
    from onnx import TensorProto

    model = operator.raw_operator
    source = operator.inputs[0]
    double = _numpy_dtype(source.type) == "float64"
    dtype, element = (np.float64, TensorProto.DOUBLE) if double else (np.float32,
                                                                        TensorProto.FLOAT)
    coef = np.atleast_2d(model.coef_).T.astype(dtype)
    intercept = np.atleast_1d(model.intercept_).astype(dtype)
    names = {key: scope.get_unique_variable_name(key)
             for key in ("coef", "intercept", "product", "scores")}
    container.add_initializer(names["coef"], element, list(coef.shape), coef.ravel())
    container.add_initializer(names["intercept"], element, list(intercept.shape), intercept)
    container.add_node("MatMul", [source.full_name, names["coef"]], [names["product"]],
                       name=scope.get_unique_operator_name("MatMul"))
    scores = operator.outputs[0].full_name if isinstance(model, _LINEAR_REGRESSORS) \
        else names["scores"]
    container.add_node("Add", [names["product"], names["intercept"]], [scores],
                       name=scope.get_unique_operator_name("Add"))
    if isinstance(model, _LINEAR_CLASSIFIERS):
        _linear_labels(scope, container, operator, scores, coef.shape[1], (dtype, element))


def _linear_labels(scope, container, operator, scores: str, width: int, types):
    from onnx import TensorProto

    dtype, element = types
    model = operator.raw_operator
    label, proba = operator.outputs[0].full_name, operator.outputs[1].full_name
    index = scope.get_unique_variable_name("index")

    def op(kind, inputs, outputs, **attrs):
        container.add_node(kind, inputs, outputs, name=scope.get_unique_operator_name(kind),
                           **attrs)

    if width > 1:
        op("Softmax", [scores], [proba], axis=1)
        op("ArgMax", [scores], [index], axis=1, keepdims=0)
    else:
        positive, negative, one, zero, flat, above = (scope.get_unique_variable_name(n) for n in
                                                      ("positive", "negative", "one", "zero",
                                                       "flat", "above"))
        container.add_initializer(one, element, [], dtype(1.0))
        container.add_initializer(zero, element, [], dtype(0.0))
        op("Sigmoid", [scores], [positive])
        op("Sub", [one, positive], [negative])
        op("Concat", [negative, positive], [proba], axis=1)
        shape = scope.get_unique_variable_name("shape")
        container.add_initializer(shape, TensorProto.INT64, [1], [-1])
        op("Reshape", [scores, shape], [flat])
        op("Greater", [flat, zero], [above])
        op("Cast", [above], [index], to=TensorProto.INT64)
    _add_labels(scope, container, model.classes_, index, label)


_REGISTERED = []


def register_converters():
    """Register sktransfer's estimators with skl2onnx (once), so that
    ``skl2onnx.to_onnx`` converts Pipelines holding them too."""
    if _REGISTERED:
        return
    skl2onnx = require("skl2onnx", "sktransfer.to_onnx")
    require("onnx", "sktransfer.to_onnx")
    pieces = [
        (PretrainedClassifier, _classifier_shapes, _convert_network, _parse_classifier),
        (TransferRegressor, _regressor_shapes, _convert_network, _parse_regressor),
        (TransferFeatures, _feature_shapes, _convert_features, _parse_features),
        *[(cls, _classifier_shapes, _convert_linear, _parse_classifier)
          for cls in _LINEAR_CLASSIFIERS],
        *[(cls, _regressor_shapes, _convert_linear, _parse_regressor)
          for cls in _LINEAR_REGRESSORS],
    ]
    for cls, shapes, convert, parse in pieces:
        skl2onnx.update_registered_converter(cls, f"Sktransfer{cls.__name__}", shapes, convert,
                                             parser=parse)
    _REGISTERED.append(True)


# -- to_onnx -------------------------------------------------------------------------------


def _check_exportable(model):
    """Refuse, with the reason, what has no ONNX graph."""
    if isinstance(model, Pipeline):
        for _, step in model.steps:
            if step not in (None, "passthrough"):
                _check_exportable(step)
        return
    check_is_fitted(model)
    if isinstance(model, PretrainedClassifier) and isinstance(model.classes_, list):
        raise OnnxExportError(
            f"the PretrainedClassifier has a multi-task head ({len(model.classes_)} tasks); "
            "to_onnx exports single-task classifiers only.")


def _zipmap_off(model, options: dict):
    """scikit-learn classifiers' probabilities as a plain tensor (skl2onnx's
    converters output a list of dicts, ZipMap, by default)."""
    if isinstance(model, Pipeline):
        for _, step in model.steps:
            _zipmap_off(step, options)
    elif is_classifier(model) and not isinstance(model, _OURS):
        options[id(model)] = {"zipmap": False}
    steps = getattr(model, "_source_steps", None)
    if steps is not None:
        _zipmap_off(steps, options)


def _task(model) -> str:
    final = _final_step(model)
    if is_classifier(final):
        return "classifier"
    if is_regressor(final):
        return "regressor"
    return "transformer"


def _classes_meta(final) -> str:
    classes = np.asarray(final.classes_)
    return json.dumps({"values": classes.tolist(), "dtype": classes.dtype.str
                       if classes.dtype.kind != "O" else "object"})


def _text_prep(step):
    """The text preprocessing (tokeniser, max_length) of a text step."""
    if isinstance(step, TransferFeatures):
        return step._embedder.preprocessing
    return step._fit_result.preprocessing


def _name(model) -> str:
    if isinstance(model, Pipeline):
        return f"Pipeline({', '.join(_name(step) for _, step in model.steps)})"
    return type(model).__name__


def _metadata(model, spec: dict, tokenizer: dict | None) -> dict:
    final = _final_step(model)
    # the package itself is loaded (this module is one of its lazy parts)
    version = getattr(sys.modules.get(__package__), "__version__", "")
    meta = {META_FORMAT: FORMAT_VERSION, META_VERSION: version,
            META_ESTIMATOR: _name(model), META_TASK: _task(model),
            META_INPUT: json.dumps(spec)}
    if meta[META_TASK] == "classifier" and hasattr(final, "classes_"):
        meta[META_CLASSES] = _classes_meta(final)
    if meta[META_TASK] == "regressor":
        ndim = getattr(final, "_y_ndim", None)
        if ndim is None:
            ndim = np.ndim(getattr(final, "coef_", np.zeros(1))) if isinstance(
                final, _LINEAR_REGRESSORS) else 1
        meta[META_Y_NDIM] = str(int(ndim))
    if tokenizer is not None:
        meta[META_TOKENIZER] = json.dumps(tokenizer)
    return meta


# node-name scopes of the networks' own layers in the graph (``onnx_export.Graph``)
_NETWORK_SCOPES = ("/outputs/network/", "/outputs/trunk/")


def _keep_float(onnx_model) -> list:
    """Nodes that quantization leaves in float: all but the networks' own
    layers, i.e. the input handling (image scaling, resizing,
    normalisation), the outputs after the last layer (softmax, labels, the
    affine map to ``y``'s units) and the scikit-learn steps."""
    return [n.name for n in onnx_model.graph.node
            if not any(scope in n.name for scope in _NETWORK_SCOPES)]


def to_onnx(fitted, X_sample, path=None, *, check: bool = True, opset: int = OPSET):
    """Export a fitted model as one ONNX graph from raw input to prediction.

    The graph holds everything ``predict`` does: for images, the scaling to
    [0, 1], the resize and centre crop to the size the network was trained
    at (exact: the same antialiased bilinear weights), the grey-to-RGB
    expansion and the normalisation; for tables, the cast to the network's
    dtype; the network in eval mode; then the probabilities and labels (or
    the targets in ``y``'s units). A text model's graph takes token ids and
    attention mask; its tokeniser is written beside the ``.onnx`` file, and
    :class:`OnnxModel` tokenises with it (no torch, no transformers).

    Parameters
    ----------
    fitted : estimator
        A fitted :class:`PretrainedClassifier`, :class:`TransferRegressor`,
        :class:`TransferFeatures`, :class:`TransferLogisticRegression`,
        :class:`TransferLogisticRegressionCV`, :class:`TransferRidge`,
        :class:`TransferRidgeCV`, or a fitted scikit-learn ``Pipeline``
        holding them among steps skl2onnx converts (scalers, linear models,
        ...). A multi-task classifier and a model fitted on image files
        are refused.
    X_sample : array-like
        A few samples as ``predict`` takes them: image arrays (uint8
        ``(N, H, W)`` / ``(N, H, W, C)``, or float ``(N, C, H, W)`` in
        [0, 1], in the layout the model was fitted on; the graph takes
        images of this height and width), a table, or texts. They fix the
        input's type and shape (the batch axis stays free) and, with
        ``check``, are predicted by both the estimator and the graph.
    path : str, path-like or None, default=None
        Where to write the ``.onnx`` file (a text model's tokeniser goes
        beside it, ``<name>.tokenizer.json``). None writes nothing (a text
        model's tokeniser is then stored in the graph's metadata).
    check : bool, default=True
        Run the graph with onnxruntime on ``X_sample`` and compare with the
        estimator: probabilities (or targets, or features, relative to
        their scale) within 1e-4 and the same labels, else raise
        ``OnnxExportError`` (a network whose Python control flow depends on
        the data traces into a wrong graph, say).
    opset : int, default=18
        ONNX opset of the graph (at most 20, the TorchScript exporter's
        limit).

    Returns
    -------
    model : onnx.ModelProto
        The graph, with metadata (``sktransfer.*``: the task, the class
        labels, the input's layout, the tokeniser) that :class:`OnnxModel`
        reads.

    Raises
    ------
    OnnxExportError
        If the model cannot be exported (the reason is given: an operator
        the ONNX exporter does not support, a multi-task head, images read
        from files) or the check fails.
    ImportError
        If onnx, onnxruntime or skl2onnx is missing:
        ``pip install 'sktransfer[onnx]'``.

    See Also
    --------
    OnnxModel : Predicts with the exported file without torch.
    quantize_onnx : An int8 copy of the exported graph.

    Notes
    -----
    The graph is the prediction path only: settings that act in training
    alone (``augment``, ``unlabeled``, ``domain_adaptation``,
    ``regularization``, early stopping, the schedules...) leave nothing to
    export, and dropout is off as in ``predict``. A domain-adaptation
    bottleneck is part of the head and is exported. An estimator that
    predicts under bf16 / fp16 autocast (``precision``) is exported in
    float32, with a warning. Images are taken at the height and width of
    ``X_sample``; another size needs another export.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sktransfer import MLP, OnnxModel, PretrainedClassifier, to_onnx
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = PretrainedClassifier(MLP(hidden_layer_sizes=(32,)), max_epochs=5,
    ...                            random_state=0).fit(X[:300], y[:300])
    >>> graph = to_onnx(clf, X[:20])
    >>> [o.name for o in graph.graph.output]
    ['label', 'probabilities']
    >>> model = OnnxModel(graph.SerializeToString())
    >>> bool((model.predict(X[300:340]) == clf.predict(X[300:340])).all())
    True
    """
    require("onnx", "sktransfer.to_onnx")
    require("onnxruntime", "sktransfer.to_onnx")
    skl2onnx = require("skl2onnx", "sktransfer.to_onnx")
    register_converters()
    _check_exportable(fitted)
    spec = input_description(fitted, X_sample)
    options: dict = {}
    _zipmap_off(fitted, options)
    _TRACED.clear()
    onnx_model = skl2onnx.convert_sklearn(
        fitted, initial_types=_initial_types(spec), target_opset={"": opset, "ai.onnx.ml":
                                                                  ML_OPSET},
        options=options or None, name=_name(fitted))
    traced = list(_TRACED)
    tokenizer = None
    if spec["kind"] == TEXT:
        tokenizer = _export().tokenizer_settings(_text_prep(_first_step(fitted)))
        spec["max_length"] = tokenizer["max_length"]
    meta = _metadata(fitted, spec, tokenizer)
    meta[META_KEEP_FLOAT] = json.dumps(_keep_float(onnx_model))
    _set_metadata(onnx_model, meta)
    if check:
        check_graph(fitted, onnx_model, X_sample, traced)
    if path is not None:
        _write(onnx_model, path, tokenizer)
    return onnx_model


def _set_metadata(onnx_model, meta: dict):
    import onnx

    onnx.helper.set_model_props(onnx_model, meta)


def _write(onnx_model, path, tokenizer):
    """Write the graph; a text model's tokeniser goes beside it, the file's
    metadata naming that file (the ModelProto returned keeps the tokeniser
    in its metadata, so that it stands alone)."""
    import onnx

    path = os.fspath(path)
    if tokenizer is None:
        onnx.save_model(onnx_model, path)
        return
    file = tokenizer_path(path)
    with open(file, "w", encoding="utf-8") as handle:
        handle.write(tokenizer["json"])
    settings = {k: v for k, v in tokenizer.items() if k != "json"}
    settings["file"] = os.path.basename(file)
    embedded = {p.key: p.value for p in onnx_model.metadata_props}
    _replace_metadata(onnx_model, dict(embedded, **{META_TOKENIZER: json.dumps(settings)}))
    try:
        onnx.save_model(onnx_model, path)
    finally:
        _replace_metadata(onnx_model, embedded)


def _replace_metadata(onnx_model, meta: dict):
    import onnx

    del onnx_model.metadata_props[:]
    onnx.helper.set_model_props(onnx_model, meta)


# -- the check -------------------------------------------------------------------------------


def _reference(model, X):
    """What the estimator predicts on ``X``: ``{output name: array}``."""
    task = _task(model)
    if task == "classifier":
        out = {LABEL: np.asarray(model.predict(X))}
        if hasattr(model, "predict_proba"):
            out[PROBABILITIES] = np.asarray(model.predict_proba(X))
        return out
    if task == "regressor":
        return {VARIABLE: np.asarray(model.predict(X), dtype=np.float64)}
    return {FEATURES: np.asarray(model.transform(X), dtype=np.float64)}


def _graph_outputs(runtime: OnnxModel, task: str, X) -> dict:
    if task == "classifier":
        out = {LABEL: runtime.predict(X)}
        if PROBABILITIES in runtime._outputs:
            out[PROBABILITIES] = runtime.predict_proba(X)
        return out
    if task == "regressor":
        return {VARIABLE: runtime.predict(X)}
    return {FEATURES: runtime.transform(X)}


def compare_outputs(expected: dict, got: dict) -> tuple[float, str | None]:
    """``(largest difference, what differs or None)`` between the
    estimator's outputs and the graph's (see ``CHECK_TOLERANCE``)."""
    worst, problem = 0.0, None
    for name, reference in expected.items():
        value = got[name]
        if name == LABEL:
            same = np.asarray(value == reference)
            if not same.all():
                problem = f"{int((~same).sum())} of {len(same)} labels differ"
            continue
        reference = np.asarray(reference, dtype=np.float64).reshape(np.shape(value))
        diff = float(np.max(np.abs(np.asarray(value, np.float64) - reference))) \
            if reference.size else 0.0
        scale = 1.0 if name == PROBABILITIES else max(1.0, float(np.max(np.abs(reference))))
        worst = max(worst, diff / scale)
        if diff > CHECK_TOLERANCE * scale and problem is None:
            problem = f"{name} differ by up to {diff:.3g}"
    return worst, problem


def check_graph(model, onnx_model, X_sample, traced=()):
    """Predict ``X_sample`` with the estimator and with the graph (all of
    it, then its first sample alone: the batch axis is free); raise
    ``OnnxExportError`` when they differ."""
    runtime = OnnxModel(onnx_model.SerializeToString())
    task = _task(model)
    expected = _reference(model, X_sample)
    worst, problem = compare_outputs(expected, _graph_outputs(runtime, task, X_sample))
    if problem is None:
        one = _graph_outputs(runtime, task, X_sample[:1])
        _, problem = compare_outputs({k: v[:1] for k, v in expected.items()}, one)
    if problem is None:
        return worst
    hint = ""
    if traced:
        hint = (" The tracer warned: " + "; ".join(dict.fromkeys(traced))[:800] +
                ". A network whose Python control flow depends on its input's values or "
                "shapes traces into a graph fixed to the traced case.")
    raise OnnxExportError(
        f"the exported graph does not reproduce {_name(model)} on X_sample: {problem} "
        f"(tolerance {CHECK_TOLERANCE:g}).{hint} Pass check=False to keep the graph anyway.")
