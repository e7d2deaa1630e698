"""Sphinx configuration for the localport documentation.

Build (warnings are errors, every cross-reference must resolve)::

    python -m sphinx -W --keep-going -n -b html docs docs/_build/html
    python -m sphinx -W -b doctest docs docs/_build/doctest
"""

from __future__ import annotations

import doctest as _doctest
import re as _re
from importlib.metadata import version as _version
from pathlib import Path as _Path

project = "localport"
author = "The localport developers"
copyright = "The localport developers"
release = _version("localport-reserve")  # the distribution; it installs the package localport
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- autodoc -----------------------------------------------------------------------------------
autodoc_typehints = "description"
# Types only for what a docstring documents: no lists of private __init__ parameters.
autodoc_typehints_description_target = "documented"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True

# No intersphinx: the build must work offline. These are the standard-library types that appear
# in signatures and cannot be resolved without it (builtins such as OSError resolve on their own).
nitpick_ignore = [
    ("py:class", "socket.socket"),
    ("py:class", "os.PathLike"),
    ("py:class", "subprocess.Popen"),  # the type of Server.process
]

# -- doctest -----------------------------------------------------------------------------------
# Examples show output as a real run prints it: `http://127.0.0.1:52317`, never
# `http://127.0.0.1:...`. Ports, PIDs and times differ from run to run, so an example whose
# output has them says `:options: +NUMBERS_VARY`: every number then matches any number (the
# rest of the line must match exactly).
_NUMBERS_VARY = _doctest.register_optionflag("NUMBERS_VARY")
_NUMBER = _re.compile(r"\d+")
_check_output = _doctest.OutputChecker.check_output


def _check_output_numbers_vary(
    self: _doctest.OutputChecker, want: str, got: str, optionflags: int
) -> bool:
    if optionflags & _NUMBERS_VARY:
        want, got = _NUMBER.sub("0", want), _NUMBER.sub("0", got)
    return _check_output(self, want, got, optionflags)


_doctest.OutputChecker.check_output = _check_output_numbers_vary  # type: ignore[method-assign]

# Every example runs against a fresh private lock directory, never the reader's real one.
doctest_global_setup = """
import os as _os
import socket as _socket
import sys as _sys
import tempfile as _tempfile

# For `:skipif:` on examples that need an IPv6 loopback address.
try:
    with _socket.socket(_socket.AF_INET6) as _probe:
        _probe.bind(("::1", 0))
    _ipv6 = True
except OSError:
    _ipv6 = False

_docs_lock_dir = _tempfile.mkdtemp(prefix="localport-docs-")
_os.chmod(_docs_lock_dir, 0o700)
_os.environ["LOCALPORT_DIR"] = _docs_lock_dir
_os.environ.pop("LOCALPORT_RANGE", None)  # the examples assume the default range
"""
# The pytest how-to runs its example test files (docs/howto/pytest-examples/) under xdist.
doctest_global_setup += f"""
import importlib.util as _importlib_util

_docs_dir = {str(_Path(__file__).resolve().parent)!r}
_xdist = _importlib_util.find_spec("xdist") is not None
"""
# The shell-script how-to runs its script (docs/howto/shell-examples/) where these tools exist.
doctest_global_setup += """
import shutil as _shutil_for_tools

_shell_tools = _os.name != "nt" and all(
    _shutil_for_tools.which(tool) for tool in ("sh", "jq", "curl")
)
"""
doctest_global_cleanup = """
import shutil as _shutil

_os.environ.pop("LOCALPORT_DIR", None)
_shutil.rmtree(_docs_lock_dir, ignore_errors=True)
"""

# -- copy button ------------------------------------------------------------------------------
# Every code block gets a copy button that copies what a reader would type: the prompts of
# console (`$ `) and Python (`>>> `, `... `) sessions are stripped, and a session's output lines
# (the lines without a prompt) are left out. Blocks without any prompt are copied whole.
copybutton_prompt_text = r"\$ |>>> |\.\.\. "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True
# Pygments marks prompts (.gp) and output (.go) in console and pycon blocks: never copy them.
copybutton_exclude = ".linenos, .gp, .go"
# No button on a block that only shows output (the `testoutput` of an example).
copybutton_selector = "div:not(.highlight-none) > div.highlight > pre"

# -- HTML --------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"localport {release}"
