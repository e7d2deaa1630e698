"""The installed distribution: its name on the package index, and the version it reports.

The distribution is ``localport-reserve`` (``localport`` on PyPI is an unrelated project); the
package, the command and the pytest plugin it installs are all named ``localport``, and
``localport.__version__`` and ``localport --version`` read the version from its metadata.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import localport
from localport import _version

DISTRIBUTION = "localport-reserve"


def test_the_distribution_metadata_name_and_version_agree_with_the_package() -> None:
    distribution = metadata.distribution(DISTRIBUTION)
    assert distribution.metadata["Name"] == DISTRIBUTION
    assert _version.DISTRIBUTION == DISTRIBUTION
    assert localport.__version__ == distribution.version
    assert localport.__version__ != "0+unknown"


def test_the_distribution_installs_the_localport_command_and_pytest_plugin() -> None:
    entry_points = {
        (entry.group, entry.name): entry.value
        for entry in metadata.distribution(DISTRIBUTION).entry_points
    }
    assert entry_points == {
        ("console_scripts", "localport"): "localport.cli:main",
        ("pytest11", "localport"): "localport.pytest_plugin",
    }


def test_localport_version_prints_the_distribution_version() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "localport"), "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert result.stdout == f"localport {metadata.version(DISTRIBUTION)}\n"


def test_the_classifiers_name_every_python_from_the_lowest_required_up() -> None:
    """CI tests each version a classifier names (.ci/run): they must be exactly the versions
    from the one requires-python names up."""
    distribution = metadata.distribution(DISTRIBUTION)
    lowest = re.fullmatch(r">=3\.(\d+)", distribution.metadata["Requires-Python"])
    assert lowest is not None
    minors = sorted(
        int(match.group(1))
        for classifier in distribution.metadata.get_all("Classifier") or []
        if (match := re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", classifier))
    )
    assert minors == list(range(int(lowest.group(1)), minors[-1] + 1))
