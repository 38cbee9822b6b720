"""Sphinx configuration of the freecg-plugin documentation (``sphinx-build -W -b html docs docs/_build/html``)."""

from importlib.metadata import version

project = "freecg-plugin"
author = "the freecg-plugin developers"
release = version("freecg-plugin")
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_default_options = {"undoc-members": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
html_theme = "alabaster"
