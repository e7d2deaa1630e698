"""The minimal Django site's one view."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello from django", content_type="text/plain")


urlpatterns = [path("", hello)]
