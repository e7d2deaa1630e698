"""A Flask app for tests/test_launch.py: ``flask --app flask_app run``."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "hello from flask"
