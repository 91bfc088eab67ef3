"""Lambda entry point: ``predict_api.handler.handler``.

Import builds the app and reads settings, nothing more: no S3 call, no model. The model
loads on the first request that needs it. Lifespan is off because Mangum would run it on
every invocation.
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from predict_api.app import create_app
from predict_api.observability import flush_metrics, logger

app = create_app()
_adapter = Mangum(app, lifespan="off")


@logger.inject_lambda_context(clear_state=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return _adapter(event, context)
    finally:
        flush_metrics()
