"""The API function's configuration, read once from the environment."""

from __future__ import annotations

from pydantic import Field

from model_store.settings import ModelSourceSettings


class ApiSettings(ModelSourceSettings):
    max_batch_records: int = Field(1000, ge=1)
    max_body_bytes: int = Field(6 * 1024 * 1024, ge=1024)  # Lambda's synchronous payload cap
    retry_after_seconds: int = Field(5, ge=1)
