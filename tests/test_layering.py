"""The package's layering, pinned so that it stays one-way:

estimators -> the engine -> the net -> leaf modules; nothing below imports
anything above it, there is no import cycle, every module imports on its
own, and ``import sktransfer`` does not load torch, torchvision or skorch.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

import sktransfer

PACKAGE = pathlib.Path(sktransfer.__file__).parent
HEAVY = ("torch", "torchvision", "skorch", "opacus")

# Each module's rank: a module may import only modules of a lower rank.
RANKS = {
    # torch-free leaves
    "sktransfer._options": 0,
    "sktransfer._deadline": 0,
    "sktransfer._canonical": 0,
    "sktransfer._table": 0,
    "sktransfer._exceptions": 0,
    "sktransfer._compat": 0,
    "sktransfer._images": 0,
    "sktransfer._text": 0,
    # inference and int8 of exported graphs: numpy + onnxruntime, no sktransfer import
    "sktransfer._onnx_runtime": 0,
    "sktransfer._onnx_quantize": 1,
    "sktransfer._progress": 1,
    # parameter transfer for linear models (torch-free throughout)
    "sktransfer._linear_solvers": 0,
    "sktransfer._linear_source": 0,
    "sktransfer._linear": 1,
    "sktransfer._nn": 0,
    "sktransfer.selection.scores": 0,
    # the unsupervised scorers of domain adaptation (torch-free, duck-typed)
    "sktransfer._adaptation_scores": 1,
    "sktransfer._adaptation_search": 2,
    # the backbone objects (torch-free)
    "sktransfer._backbone": 1,
    # _nn leaves
    "sktransfer._nn.workers": 0,
    "sktransfer._nn.digests": 0,
    "sktransfer._nn.distributed": 0,
    "sktransfer._nn.batches": 0,
    # DP-SGD through Opacus (imported by a private fit only)
    "sktransfer._nn.privacy": 1,
    "sktransfer._nn.runtime": 1,
    "sktransfer._nn.backbones": 1,
    "sktransfer._nn.tabular": 1,
    "sktransfer._nn.activation_store": 1,
    "sktransfer._nn.losses": 1,
    "sktransfer._nn.partial": 1,
    "sktransfer._nn.weights": 1,
    "sktransfer._nn.data": 2,
    "sktransfer._nn.text": 2,
    "sktransfer._nn.optim": 2,
    "sktransfer._nn.inference": 2,
    "sktransfer._nn.source_head": 2,
    "sktransfer._nn.attribution": 3,
    "sktransfer._nn.freezing": 3,
    "sktransfer._nn.features": 3,
    "sktransfer._nn.model": 3,
    # the method objects: torch-free, their losses imported on first use
    "sktransfer._methods": 3,
    # training on top of the leaves
    "sktransfer._nn.callbacks": 4,
    "sktransfer._nn.frozen_cut": 4,
    "sktransfer._recipe": 4,
    "sktransfer._nn.probe": 5,
    "sktransfer._nn.trained_fits": 5,
    "sktransfer._nn.build": 5,
    "sktransfer._nn.embedding": 5,
    "sktransfer._nn.net": 5,
    "sktransfer._nn.launch": 6,
    "sktransfer._nn.engine": 7,
    # a fitted network's prediction path as an ONNX graph (torch side)
    "sktransfer._nn.onnx_export": 4,
    # the estimators
    "sktransfer._docs": 8,
    "sktransfer._base": 8,
    "sktransfer._classifier": 9,
    "sktransfer._regressor": 9,
    "sktransfer._features": 9,
    # distillation: a meta-estimator over the classifier
    "sktransfer._distillation": 10,
    "sktransfer.selection.ranking": 10,
    # ONNX export of the estimators and Pipelines (skl2onnx converters)
    "sktransfer._onnx": 10,
    "sktransfer.selection.scorer": 10,
    "sktransfer.selection": 11,
    # inspection of fitted estimators: attributions, worst predictions, displays
    "sktransfer.inspection._attribution": 10,
    "sktransfer.inspection._losses": 11,
    "sktransfer.inspection._display": 12,
    "sktransfer.inspection": 13,
    # automatic transfer, above the estimators it chooses between
    "sktransfer._auto.leaderboard": 1,
    "sktransfer._auto.space": 10,
    "sktransfer._auto.networks": 11,
    "sktransfer._auto.search": 11,
    "sktransfer._auto.estimators": 12,
    "sktransfer._auto": 13,
    "sktransfer": 14,
    "sktransfer.demo": 15,
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The sktransfer modules a ``from ... import ...`` names."""
    if node.level == 0:
        base = node.module or ""
    else:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    targets = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        targets.append(candidate if candidate in MODULES else base)
    return targets


def sktransfer_imports(module: str) -> set[str]:
    """Every sktransfer module ``module`` imports, at top level or inside a
    function (lazy imports count), except under ``if TYPE_CHECKING``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    type_checking = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                     and getattr(node.test, "id", None) == "TYPE_CHECKING"
                     for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found |= set(_resolve(module, path.name == "__init__.py", node))
    return {name for name in found if name.split(".")[0] == "sktransfer" and name != module}


def test_every_module_has_a_rank():
    assert sorted(MODULES) == sorted(RANKS), "add new modules to RANKS"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_only(module):
    upward = {name: RANKS[name] for name in sktransfer_imports(module)
              if RANKS[name] >= RANKS[module]}
    assert not upward, (f"{module} (rank {RANKS[module]}) imports modules at or above its "
                        f"rank: {upward}")


def test_nn_never_imports_the_estimators():
    for module in MODULES:
        if module.startswith("sktransfer._nn"):
            above = {name for name in sktransfer_imports(module)
                     if not name.startswith("sktransfer._nn")}
            # torch-free leaves: option values, exceptions, the text registry names,
            # the deadline, settings as plain values
            allowed = {"sktransfer._options", "sktransfer._exceptions", "sktransfer._text",
                       "sktransfer._deadline", "sktransfer._canonical"}
            assert above <= allowed, (module, above)


def test_no_import_cycle():
    graph = {module: sktransfer_imports(module) for module in MODULES}
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import cycle: {' -> '.join(path + [node])}"
        state[node] = "open"
        for target in graph[node]:
            visit(target, path + [node])
        state[node] = "done"

    for module in graph:
        visit(module, [])


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_every_module_imports_on_its_own():
    # one interpreter (torch stays loaded between modules), but each module is
    # imported with no sktransfer module loaded before it
    code = f"""
import importlib, sys
for name in {sorted(MODULES)!r}:
    for loaded in [m for m in sys.modules if m == "sktransfer" or m.startswith("sktransfer.")]:
        del sys.modules[loaded]
    importlib.import_module(name)
print("ok")
"""
    assert _run(code).strip() == "ok"


@pytest.mark.parametrize("statement", [
    "import sktransfer",
    "from sktransfer import PretrainedClassifier, TransferRegressor, TransferFeatures",
    "from sktransfer import MLP, ImageBackbone, TextEncoder, PseudoLabel, DANN, L2SP",
    "from sktransfer.selection import logme, h_score, leep, nce",
    "from sktransfer import TransferLogisticRegressionCV, TransferRidgeCV, "
    "NegativeTransferWarning",
    "from sktransfer import OnnxModel, quantize_onnx, compare_quantized, to_onnx",
])
def test_import_does_not_load_torch(statement):
    loaded = _run(f"{statement}\nimport sys\nprint(sorted(m for m in {HEAVY!r} "
                  "if m in sys.modules))")
    assert loaded.strip() == "[]"


@pytest.mark.slow
def test_torch_loads_on_first_use():
    code = """
import sys
import numpy as np
import sktransfer
names = sktransfer.list_backbones()
assert "mobilenet_v2" in names and "torch" in sys.modules
from sktransfer import PretrainedClassifier
X = np.random.RandomState(0).randn(20, 3)
PretrainedClassifier("mlp", max_epochs=1, device="cpu").fit(X, [0, 1] * 10)
assert "skorch" in sys.modules
print("ok")
"""
    assert _run(code).strip() == "ok"


# -- the shape of the code -----------------------------------------------------------------

MAX_PARAMETERS = 8  # of an internal function (under _nn or named with a leading underscore)


def _parameter_count(node) -> int:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args]
    count = len(names) + len(args.kwonlyargs) + bool(args.vararg) + bool(args.kwarg)
    return count - (names[:1] in (["self"], ["cls"]))


def test_internal_functions_take_few_parameters():
    """A function that needs more than a handful of values takes the
    recipe (or its group), or a small dataclass, instead of a relay of
    keyword arguments."""
    wide = []
    for module, path in MODULES.items():
        internal_module = "._nn" in module
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and node.name != "__init__"
                    and (internal_module or node.name.startswith("_"))
                    and _parameter_count(node) > MAX_PARAMETERS):
                wide.append(f"{module}.{node.name} ({_parameter_count(node)})")
    assert not wide, f"functions with more than {MAX_PARAMETERS} parameters: {wide}"


def test_the_engine_stays_one_concern_and_options_are_read_where_used():
    engine = MODULES["sktransfer._nn.engine"].read_text()
    assert len(engine.splitlines()) <= 350
    readers = [name for name, path in MODULES.items() if name.startswith("sktransfer._nn")
               and "max_grad_norm" in path.read_text()]
    assert len(readers) <= 2, readers
