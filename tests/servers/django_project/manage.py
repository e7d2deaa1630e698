"""Django's command line for the minimal site tests/test_launch.py starts."""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # Set, not setdefault: a DJANGO_SETTINGS_MODULE in the developer's shell must not win.
    os.environ["DJANGO_SETTINGS_MODULE"] = "launch_site.settings"
    from django.core.management import execute_from_command_line  # type: ignore[import-untyped]

    execute_from_command_line(sys.argv)
