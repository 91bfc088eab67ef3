"""The online prediction function: FastAPI behind API Gateway, through Mangum.

FastAPI is imported here, first, with pydantic's ``defer_build`` switched on for the
duration: FastAPI defines some sixty pydantic models for the OpenAPI document, and pydantic
builds each one's validator and serializer as the class is made, a fifth of this
function's cold start (bench/cold_start.py) for a document it serves only on /docs and
/openapi.json. Deferred, a model is built on its first use instead. FastAPI does not set
``defer_build`` on its models, so the default is switched, around this one import; the
default lives in a private pydantic module, and if a release moves it nothing is deferred
and nothing else changes (tests/unit/predict_api/test_import.py notices).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def _pydantic_builds_deferred() -> Iterator[None]:
    try:
        from pydantic._internal._config import config_defaults
    except ImportError:  # pragma: no cover - a pydantic without it
        yield
        return
    if config_defaults.get("defer_build") is not False:
        yield
        return
    config_defaults["defer_build"] = True
    try:
        yield
    finally:
        config_defaults["defer_build"] = False


with _pydantic_builds_deferred():
    import fastapi.applications
    import fastapi.openapi.utils  # noqa: F401
