"""Where a function finds its model, read from the environment (pydantic-settings).

Each function's settings extend this one. Templates declare every variable empty by
default (``sam local invoke`` only passes declared ones), so empty means "the default".
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from model_store.runtimes import RuntimeName
from model_store.serving import ModelLoader
from model_store.signing import Verifier


class ModelSourceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_ignore_empty=True, extra="ignore", protected_namespaces=(), frozen=True
    )

    model_bucket: str = Field("", description="bucket of the model registry")
    model_prefix: str = Field("", description="registry prefix inside the bucket")
    model_name: str = "iris"
    model_alias: str = "production"
    model_version: str = Field("", description="pin a version; empty follows the alias")
    model_refresh_seconds: float = Field(60.0, ge=0)
    model_refresh_timeout_seconds: float = Field(
        1.0, gt=0, description="a due alias check's whole budget, on the request path"
    )
    model_load_timeout_seconds: float = Field(
        20.0, gt=0, description="a model load's whole budget: below the function's timeout"
    )
    serving_runtime: RuntimeName = Field(
        "onnx", description="onnx (ONNX Runtime, the model's ONNX form) or sklearn (unpickle)"
    )
    allow_model_version_mismatch: bool = False
    model_signing_key_arn: str = Field(
        "",
        description="ARN of the KMS key whose signature every served manifest must carry "
        "(checked with kms:Verify before loading); empty: signatures are not checked",
    )

    @property
    def registry_location(self) -> str:
        return f"s3://{self.model_bucket}/{self.model_prefix.strip('/')}"

    def loader(self) -> ModelLoader:
        """A lazy loader: nothing is read (not even a boto3 client made) until first use."""
        from model_store.exceptions import ModelUnavailableError
        from model_store.registry import Registry, open_registry

        def registry() -> Registry:
            if not self.model_bucket:
                raise ModelUnavailableError("MODEL_BUCKET is not set")
            return open_registry(self.registry_location, direct_http=True)

        return ModelLoader(
            registry,
            self.model_name,
            alias=self.model_alias,
            version=self.model_version or None,
            runtime=self.serving_runtime,
            refresh_seconds=self.model_refresh_seconds,
            refresh_timeout=self.model_refresh_timeout_seconds,
            load_timeout=self.model_load_timeout_seconds,
            allow_version_mismatch=self.allow_model_version_mismatch,
            verifier=self._verifier(),
        )

    def _verifier(self) -> Verifier | None:
        if not self.model_signing_key_arn:
            return None
        from model_store.signing import verifier_for

        return verifier_for(self.model_signing_key_arn, direct_http=True)
