"""What the routes need: settings, the lazy model loader, and schemas cached per version."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from model_store import LoadedModel, Manifest, ModelLoader, batch_model, record_model
from predict_api.observability import record_model_load
from predict_api.settings import ApiSettings

# A synchronous Lambda invocation carries at most 6 MB each way, headers included.
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
# The longest a JSON number can legally be written here (a float's repr plus a sign).
_NUMBER_BYTES = 24


@dataclass(frozen=True)
class Schemas:
    record: type[BaseModel]
    batch: type[BaseModel]
    record_bytes: int  # the longest legal record, compactly written
    body_limit: int  # for a batch; a single record's limit is one record's share


@dataclass
class ModelService:
    settings: ApiSettings
    loader: ModelLoader
    _schemas: dict[tuple[str, str], Schemas] = field(default_factory=dict, init=False)
    _seen: LoadedModel | None = field(default=None, init=False)

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> ModelService:
        return cls(settings, settings.loader())

    def model(self) -> LoadedModel:
        loaded = self.loader.get()
        if loaded is not self._seen:
            self._seen = loaded
            record_model_load(loaded.version, loaded.load_seconds)
        return loaded

    def manifest(self) -> Manifest:
        """The served model's manifest, read without unpickling when none is loaded yet."""
        current = self.loader.current
        if current is not None:
            return current.manifest
        return self.loader.peek_manifest()

    def schemas(self, manifest: Manifest) -> Schemas:
        key = (manifest.name, manifest.version or "")
        cached = self._schemas.get(key)
        if cached is None:
            record = record_model(manifest)
            batch = batch_model(manifest, record, max_records=self.settings.max_batch_records)
            # '"name": number, ' per feature in braces: the largest legal record.
            record_bytes = 2 + sum(len(f.name) + 6 + _NUMBER_BYTES for f in manifest.features)
            largest = 16 + record_bytes * self.settings.max_batch_records
            limit = self.settings.max_body_bytes or min(2 * largest + 4096, LAMBDA_PAYLOAD_BYTES)
            cached = self._schemas[key] = Schemas(record, batch, record_bytes, limit)
        return cached

    def body_limit(self, manifest: Manifest | None, *, batch: bool) -> int:
        """The most bytes a body may have: twice the largest legal one, unless configured."""
        if self.settings.max_body_bytes:
            return self.settings.max_body_bytes
        if manifest is None:
            return LAMBDA_PAYLOAD_BYTES
        schemas = self.schemas(manifest)
        return (
            schemas.body_limit
            if batch
            else min(2 * schemas.record_bytes + 4096, schemas.body_limit)
        )
