"""The API function's configuration, read once from the environment."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    # The template declares every variable, empty by default (sam local invoke only passes
    # declared ones), so an empty value means "use the default".
    model_config = SettingsConfigDict(
        env_ignore_empty=True, extra="ignore", protected_namespaces=(), frozen=True
    )

    model_bucket: str = Field("", description="bucket of the model registry")
    model_prefix: str = Field("", description="registry prefix inside the bucket")
    model_name: str = "iris"
    model_alias: str = "production"
    model_version: str = Field("", description="pin a version; empty follows the alias")
    model_refresh_seconds: float = Field(60.0, ge=0)
    allow_model_version_mismatch: bool = False
    max_batch_records: int = Field(1000, ge=1)
    max_body_bytes: int = Field(6 * 1024 * 1024, ge=1024)  # Lambda's synchronous payload cap
    retry_after_seconds: int = Field(5, ge=1)

    @property
    def registry_location(self) -> str:
        return f"s3://{self.model_bucket}/{self.model_prefix.strip('/')}"
