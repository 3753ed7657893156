"""Every Python block of README.md and of the documentation's Markdown pages
(``docs/**/*.md``) runs as written, each on its own (so also all in order:
each block defines what it uses), so the text cannot drift from the code. To
keep the suite fast the blocks run with smaller sizes: the substitutions in
``SMALLER`` (documented on the user guide's index page)."""

import pathlib
import re
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]

# (pattern, replacement): 32 px instead of 64, one epoch, 60 images, a
# 10-second time budget. The image size is ImageBackbone("mobilenet_v2",
# image_size=64) for the estimators and TransferFeatures, and
# rank_backbones' and AutoTransferClassifier's own image_size=64.
SMALLER = [
    (r"\bimage_size=64\b", "image_size=32"),
    (r"max_epochs=(5|10)\b", "max_epochs=1"),
    (r"\[:(200|300|500|1000)\]", "[:60]"),
    (r"\[500:(1500)?\]", "[500:600]"),
    (r"\[1000:1500\]", "[1000:1060]"),
    (r"time_budget=\d+", "time_budget=10"),
]


def blocks_of(page: pathlib.Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def blocks() -> list[str]:
    return [block for page in PAGES for block in blocks_of(page)]


def block_ids() -> list[tuple[str, int]]:
    return [(page.relative_to(ROOT).as_posix(), index)
            for page in PAGES for index in range(len(blocks_of(page)))]


def smaller(code: str) -> str:
    for pattern, replacement in SMALLER:
        code = re.sub(pattern, replacement, code)
    return code


def test_the_pages_have_their_blocks():
    assert len(blocks_of(README)) >= 1
    assert len(blocks()) >= 16
    # every topic page of the user guide shows code
    for topic in ("images", "tabular", "features", "linear", "text", "unlabeled",
                  "distillation", "caching", "transferability", "auto", "strategies",
                  "scaling", "inspection", "onnx"):
        assert blocks_of(ROOT / "docs" / "user_guide" / f"{topic}.md"), topic


def test_every_substitution_applies():
    # a pattern no block matches any more would leave its blocks at full size
    code = "\n".join(blocks())
    for pattern, _ in SMALLER:
        assert re.search(pattern, code), pattern
    # no image estimator in a block runs at the weights' own size (224 px):
    # each is given an ImageBackbone whose image_size the table shrinks
    for block in map(smaller, blocks()):
        for args in re.findall(r"ImageBackbone\(([^)]*)\)", block):
            assert "image_size=32" in args, args
        bare = re.search(r'(PretrainedClassifier|TransferRegressor)\(\s*(backbone=)?"(?!mlp")',
                         block)
        assert bare is None, bare


@pytest.mark.slow
@pytest.mark.parametrize("page, index", block_ids(), ids=[f"{p}-{i}" for p, i in block_ids()])
def test_block_runs_alone(page, index, tmp_path, monkeypatch):
    code = blocks_of(ROOT / page)[index]
    if "all-MiniLM-L6-v2" in code:
        pytest.importorskip("transformers")
    monkeypatch.chdir(tmp_path)  # blocks write files (joblib, safetensors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short budgets, tiny folds: expected warnings
        # run as a script is: a block's `if __name__ == "__main__":` part runs too
        exec(compile(smaller(code), f"{page} block {index}", "exec"),
             {"__name__": "__main__"})
