"""The documentation site builds without a single warning: every page,
every cross-reference (nitpicky), every API page from the docstrings, and the
gallery's pages (its examples not executed; ``make docs`` executes them)."""

import os
import pathlib
import subprocess
import sys

import pytest

import sktransfer
from sktransfer import inspection, selection

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

for module in ("sphinx", "myst_parser", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme"):
    pytest.importorskip(module)  # the 'docs' extra, which make test installs


@pytest.mark.slow
def test_the_site_builds_without_warnings(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n", "-q",
         "-D", "plot_gallery=0", "-d", str(tmp_path / "doctrees"),
         str(DOCS), str(tmp_path / "html")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output and "ERROR" not in output, output
    for page in ("index", "getting_started", "api", "benchmarks", "user_guide/index",
                 "user_guide/parameters", "auto_examples/index",
                 "generated/sktransfer.PretrainedClassifier"):
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
    # every example is a gallery item
    for example in (ROOT / "examples").glob("*.py"):
        assert (tmp_path / "html" / "auto_examples" / f"{example.stem}.html").is_file(), example


@pytest.mark.parametrize("module", [sktransfer, inspection, selection],
                         ids=lambda module: module.__name__)
def test_every_public_name_has_an_api_page(module):
    api = (DOCS / "api.md").read_text()
    submodules = {"inspection", "selection", "__version__"}
    missing = [name for name in module.__all__
               if name not in submodules and f"   {name}\n" not in api]
    assert not missing, f"add to docs/api.md: {missing}"
