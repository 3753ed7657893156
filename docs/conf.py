"""Sphinx configuration of the sktransfer documentation.

``make docs`` builds the site into ``docs/_build/html`` and executes the
gallery (``-D plot_gallery=1``); ``tests/test_docs.py`` builds it with every
warning an error and the gallery not executed (``-D plot_gallery=0``). The
build reads nothing from the network: no intersphinx.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs"))  # _gallery.py

import sktransfer  # noqa: E402

project = "sktransfer"
author = "the sktransfer developers"
copyright = "the sktransfer developers"
release = version = sktransfer.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb"]

# Markdown pages (MyST): `#anchor` links to headings, ``` {eval-rst} ``` blocks.
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
# benchmarks/README.md, included as it is, skips heading levels (## to ####)
suppress_warnings = ["myst.header"]

# API pages: one per public name, from the docstrings (numpydoc form).
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc Parameters sections give the types
numpydoc_show_class_members = False  # the class template lists the methods
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

# Cross-references that cannot resolve without intersphinx (which needs the
# network): names of other libraries in See Also sections and signatures.
nitpick_ignore_regex = [
    ("py:.*", r"(sklearn|numpy|np|scipy|torch|torchvision|skorch|pandas|onnx|onnxruntime"
              r"|skl2onnx|transformers|tokenizers|matplotlib|joblib|tqdm|PIL)(\..*)?"),
]

# The gallery: every script of examples/ is an item, executed by `make docs`.
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/",  # execute every example, not only plot_*.py
    "plot_gallery": "True",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "image_scrapers": ("_gallery.tight_matplotlib_scraper",),
    "within_subsection_order": "FileNameSortKey",
    "min_reported_time": 1,
}

html_theme = "pydata_sphinx_theme"
html_title = f"sktransfer {release}"
html_static_path = []
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "getting_started": [], "benchmarks": []}
html_show_sourcelink = False

# the executed examples draw their figures off-screen
os.environ.setdefault("MPLBACKEND", "Agg")
