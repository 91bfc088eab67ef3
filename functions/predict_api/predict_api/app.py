"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from predict_api import docs, errors
from predict_api.middleware import RequestContext
from predict_api.routes import router
from predict_api.service import ModelService
from predict_api.settings import ApiSettings

DESCRIPTION = (
    "Predictions from a scikit-learn model served from AWS Lambda. Every route but "
    "`/health` needs an API key in the `x-api-key` header."
)


def create_app(settings: ApiSettings | None = None, service: ModelService | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    service = service or ModelService.from_settings(settings)
    app = FastAPI(
        title="sklearn-serverless prediction API",
        version="1",
        description=DESCRIPTION,
        redoc_url=None,
    )
    app.state.service = service
    app.include_router(router)
    errors.install(app, retry_after_seconds=settings.retry_after_seconds)
    docs.install(app, service)
    app.add_middleware(RequestContext)
    return app
