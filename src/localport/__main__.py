"""``python -m localport``: the same as the ``localport`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
