"""Settings for the minimal Django site that tests/test_launch.py starts with runserver."""

from __future__ import annotations

DEBUG = True
SECRET_KEY = "localport-tests-only"  # noqa: S105 - a test site on loopback, never deployed
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "launch_site.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
