"""The API function's configuration, read once from the environment."""

from __future__ import annotations

from pydantic import Field

from model_store.settings import ModelSourceSettings


class ApiSettings(ModelSourceSettings):
    max_batch_records: int = Field(1000, ge=1)
    # Empty: twice the largest legal body for the served model's features (a batch of
    # max_batch_records records), so a hostile body costs bounded work.
    max_body_bytes: int | None = Field(None, ge=1024)
    retry_after_seconds: int = Field(5, ge=1)
