"""Docstrings of the public API, validated with numpydoc against the signatures.

One case per object: each public class (its docstring against ``__init__``),
each public method or property that a sktransfer class defines, and each
public function of ``sktransfer`` and ``sktransfer.selection``. The estimators'
Parameters sections are assembled by ``sktransfer._docs.document_parameters``,
tested at the end.
"""

import ast
import inspect
import re

import pytest
from numpydoc.docscrape import ClassDoc, FunctionDoc
from numpydoc.validate import validate

import sktransfer
from sktransfer import _docs, inspection, selection

# numpydoc's checks of what a docstring says against the object: parameter
# names, order, types and descriptions (PR), Returns / Yields present and
# described, sections known and in order, a summary. Left out as style only:
# the imperative summary (SS05), the extended summary (ES01), See Also and
# Examples on every method (SA01, EX01), capitals and full stops; and RT02,
# which forbids the named return values (``self : object``) scikit-learn uses.
CHECKS = {"GL06", "GL07", "GL08", "GL10", "SS01", "PR01", "PR02", "PR03", "PR04", "PR06",
          "PR07", "PR10", "RT01", "RT03", "YD01"}

# Failures in modules that are being reworked elsewhere. Strict: once the
# docstring is fixed the case passes, XPASS fails the suite, and the entry goes.
KNOWN_FAILURES: dict = {}

PLACEHOLDER = re.compile(r"^\s*\{\w+\}\s*$", re.MULTILINE)


def _members(path, cls):
    """Public methods and properties defined by a sktransfer class in the MRO
    of ``cls`` (not those inherited from scikit-learn or builtins)."""
    for name in sorted(dir(cls)):
        if name.startswith("_"):
            continue
        owner = next(klass for klass in cls.__mro__ if name in vars(klass))
        member = vars(owner)[name]
        if owner.__module__.startswith("sktransfer") and (
                inspect.isfunction(member) or isinstance(member, property)):
            yield f"{path}.{name}", member


def _public_objects():
    """``(dotted path, object)`` of the public API, each object once."""
    seen = set()
    for prefix, module in [("sktransfer", sktransfer), ("sktransfer.selection", selection),
                           ("sktransfer.inspection", inspection)]:
        for name in module.__all__:
            obj = getattr(module, name)
            if id(obj) in seen or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            seen.add(id(obj))
            yield f"{prefix}.{name}", obj
            if inspect.isclass(obj):
                yield from _members(f"{prefix}.{name}", obj)


PUBLIC = dict(_public_objects())


def _cases():
    cases = []
    for path, obj in PUBLIC.items():
        marks = ()
        if path in KNOWN_FAILURES:
            marks = pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[path])
        cases.append(pytest.param(path, obj, id=path, marks=marks))
    return cases


def _default_mismatches(obj) -> list[str]:
    """Parameters whose ``default=...`` in the docstring is not the default in
    the signature (or is missing)."""
    if isinstance(obj, property):
        return []
    try:
        signature = inspect.signature(obj)
    except ValueError:  # a subclass of a builtin (the exceptions): no parameters
        return []
    doc = ClassDoc(obj) if inspect.isclass(obj) else FunctionDoc(obj)
    problems = []
    for param in doc["Parameters"]:
        if param.name not in signature.parameters:
            continue  # PR02 reports it
        default = signature.parameters[param.name].default
        documented = re.search(r"default=(.+)$", param.type)
        if default is inspect.Parameter.empty:
            if documented:
                problems.append(f"{param.name}: documents {documented.group(0)} but is "
                                "required")
            continue
        if default is None and param.type in ("None", "Ignored"):
            continue  # scikit-learn's "y : None / Ignored."
        if documented is None:
            problems.append(f"{param.name}: type {param.type!r} says no default=; the "
                            f"signature's default is {default!r}")
            continue
        try:
            value = ast.literal_eval(documented.group(1))
        except (ValueError, SyntaxError):
            problems.append(f"{param.name}: {documented.group(0)} is not a Python literal")
            continue
        if type(value) is not type(default) or value != default:
            problems.append(f"{param.name}: docstring says {documented.group(0)}, the "
                            f"signature default={default!r}")
    return problems


@pytest.mark.parametrize("path, obj", _cases())
def test_docstring(path, obj):
    errors = [f"{code}: {message}" for code, message in validate(path)["errors"]
              if code in CHECKS]
    errors += _default_mismatches(obj)
    if PLACEHOLDER.search(inspect.getdoc(obj) or ""):
        errors.append("unfilled placeholder line: " + PLACEHOLDER.search(obj.__doc__)[0])
    assert not errors, f"{path}:\n  " + "\n  ".join(errors)


def test_scope_covers_the_public_api():
    expected = {
        f"sktransfer.{cls}.{method}"
        for cls in ("PretrainedClassifier", "TransferRegressor")
        for method in ("fit", "predict", "save_weights")
    } | {
        "sktransfer.PretrainedClassifier", "sktransfer.TransferRegressor",
        "sktransfer.TransferFeatures", "sktransfer.PretrainedClassifier.predict_proba",
        "sktransfer.TransferFeatures.fit", "sktransfer.TransferFeatures.transform",
        "sktransfer.list_backbones", "sktransfer.cache_info", "sktransfer.clear_cache",
        "sktransfer.set_cache_budget", "sktransfer.rank_backbones",
        "sktransfer.make_transferability_scorer", "sktransfer.selection.BackboneRanking",
        "sktransfer.selection.logme", "sktransfer.selection.h_score",
        "sktransfer.selection.leep", "sktransfer.selection.nce",
    }
    assert expected <= set(PUBLIC), sorted(expected - set(PUBLIC))
    # inherited from scikit-learn: its own docstrings, not ours
    assert "sktransfer.TransferFeatures.fit_transform" not in PUBLIC


# -- the decorator that assembles the estimators' Parameters -------------------

TOY_DOC = """Toy estimator.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    {attributes}
    """


def _toy_class(extra_names=(), drop=(), doc=TOY_DOC, methods=None):
    """A class whose ``__init__`` takes the shared parameters (less ``drop``)
    with ``extra_names`` after ``backbone``."""
    names = [name for name in _docs.PARAMETERS if name not in drop]
    names[1:1] = extra_names
    self = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
              for name in names]

    def __init__(self, **kwargs):
        pass

    __init__.__signature__ = inspect.Signature([self, *params])
    return type("Toy", (), {"__doc__": doc, "__init__": __init__, **(methods or {})})


def test_parameters_follow_the_signature():
    extra = {"tag": "tag : str, default=None\n    A tag."}
    cls = _docs.document_parameters(extra=extra)(_toy_class(["tag"]))
    names = [param.name for param in ClassDoc(cls)["Parameters"]]
    assert names == list(inspect.signature(cls).parameters)
    assert names[:3] == ["backbone", "tag", "weights"]
    assert "    tag : str, default=None\n        A tag.\n" in cls.__doc__
    assert "    history_ : list of dict\n" in cls.__doc__  # {attributes}


def test_placeholders_of_methods_are_filled_and_indented():
    def fit(self, X):
        """Fit.

        Parameters
        ----------
        {fit_x}
        """

    cls = _docs.document_parameters()(_toy_class(methods={"fit": fit}))
    assert "\n        X : images or array-like" in cls.fit.__doc__
    assert "\n            Images: uint8" in cls.fit.__doc__


@pytest.mark.parametrize("kwargs, extra, match", [
    pytest.param({"extra_names": ["tag"]}, None, r"parameters without an entry: \['tag'\]",
                 id="parameter-without-entry"),
    pytest.param({}, {"tag": "tag : int\n    A tag."}, r"entries without a parameter: \['tag'\]",
                 id="extra-entry-without-parameter"),
    pytest.param({"drop": ["verbose"]}, None, r"entries without a parameter: \['verbose'\]",
                 id="shared-entry-without-parameter"),
    pytest.param({}, {"lr": "lr : float\n    Rate."},
                 r"extra documents the shared parameters \['lr'\]", id="extra-repeats-shared"),
    pytest.param({"extra_names": ["tag"]}, {"tag": "tags : int\n    A tag."},
                 r"must start with 'tag : '", id="entry-names-another-parameter"),
    pytest.param({"doc": "Toy.\n\n    Parameters\n    ----------\n"}, None,
                 r"has no \{parameters\} line", id="no-parameters-placeholder"),
    pytest.param({"doc": TOY_DOC + "\n    {nothing}\n"}, None,
                 r"unknown docstring placeholder \{nothing\}", id="unknown-placeholder"),
])
def test_drift_fails_when_the_class_is_defined(kwargs, extra, match):
    with pytest.raises(TypeError, match=match):
        _docs.document_parameters(extra=extra)(_toy_class(**kwargs))
