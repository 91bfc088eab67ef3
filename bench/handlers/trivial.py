"""The floor of the emulator itself: a handler that imports nothing and does nothing."""

from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": "{}"}
