"""Sphinx configuration of the freecg-plugin documentation (``sphinx-build -W -b html docs docs/_build/html``)."""

import importlib.metadata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bad_inputs_table  # noqa: E402

bad_inputs_table.write(Path(__file__).resolve().parent / "_generated" / "bad_inputs_table.md")

project = "freecg-plugin"
author = "the freecg-plugin developers"
release = importlib.metadata.version("freecg-plugin")
version = release
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_generated"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # the hosts' and Lightning's docstrings are theirs, not ours
# members are documented where they are defined (packages re-export them: no duplicates)
autodoc_default_options = {"ignore-module-all": True}
autodoc_mock_imports = ["mace"]  # MACE lives in its own environment (.venv-mace); its page documents the adapter here
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # Attributes: sections as fields of their class, not as objects of their own
html_theme = "alabaster"
