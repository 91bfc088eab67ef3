"""What the routes need: settings, the lazy model loader, and schemas cached per version."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from model_store import LoadedModel, Manifest, ModelLoader, batch_model, record_model
from predict_api.observability import record_model_load
from predict_api.settings import ApiSettings


@dataclass(frozen=True)
class Schemas:
    record: type[BaseModel]
    batch: type[BaseModel]


@dataclass
class ModelService:
    settings: ApiSettings
    loader: ModelLoader
    _schemas: dict[tuple[str, str], Schemas] = field(default_factory=dict)
    _seen: LoadedModel | None = None

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
            cached = self._schemas[key] = Schemas(record, batch)
        return cached
