"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import Collection

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from predict_api import docs, errors
from predict_api.middleware import RequestContext
from predict_api.routes import router
from predict_api.service import ModelService
from predict_api.settings import ApiSettings

DESCRIPTION = (
    "Predictions from a scikit-learn model served from AWS Lambda. Every route but "
    "`/health` and these docs needs an API key in the `x-api-key` header: **Authorize** "
    "takes it, then *Try it out* sends it."
)


def create_app(settings: ApiSettings | None = None, service: ModelService | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    service = service or ModelService.from_settings(settings)
    app = FastAPI(
        title="sklearn-serverless prediction API",
        version="1",
        description=DESCRIPTION,
        docs_url=None,  # docs.py serves /docs: Swagger UI pinned, integrity-checked
        redoc_url=None,
    )
    app.state.service = service
    app.include_router(router)
    _serve_directly(app, {"/predict", "/batch_predict"})
    errors.install(app, retry_after_seconds=settings.retry_after_seconds)
    docs.install(app, service)
    app.add_middleware(RequestContext)
    return app


def _serve_directly(app: FastAPI, paths: Collection[str]) -> None:
    """The scoring routes, matched first and without FastAPI's per-request machinery.

    Their endpoints take the Request and return a Response, so FastAPI's route matching
    (through the included router) and dependency solving only add time: about 70 us a
    request, a quarter of a bare FastAPI app's (bench/warm_overhead.py). Plain Starlette
    routes with the same endpoints go first; the APIRoutes stay, unreached, because FastAPI
    documents only those.
    """
    direct = [
        Route(route.path, route.endpoint, methods=sorted(route.methods or ()), name=route.name)
        for route in router.routes
        if isinstance(route, APIRoute) and route.path in paths
    ]
    if len(direct) != len(paths):
        raise RuntimeError(f"the router has no APIRoute for each of {sorted(paths)}")
    app.router.routes[:0] = direct
