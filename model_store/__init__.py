"""model_store: train, package, version, load and score scikit-learn models.

The public API is what this module exports. It never imports a web framework or a
Lambda runtime; boto3 clients are passed in or built by ``model_store.aws``.
"""

from model_store.artifact import Artifact
from model_store.exceptions import (
    AliasNotFoundError,
    IncompatibleModelError,
    InputError,
    IntegrityError,
    InvalidNameError,
    ManifestError,
    ModelNotFoundError,
    ModelStoreError,
    ModelUnavailableError,
    NotFoundError,
    NothingToRollBackError,
    RegistryError,
    TrainingDataError,
    VersionExistsError,
    VersionNotFoundError,
)
from model_store.loader import ModelLoader
from model_store.loading import LoadedModel, load_model
from model_store.manifest import Manifest
from model_store.registry import Registry, open_registry
from model_store.schema import batch_model, example_record, record_model, records_matrix
from model_store.scoring import Predictions, predict

__all__ = [
    "AliasNotFoundError",
    "Artifact",
    "IncompatibleModelError",
    "InputError",
    "IntegrityError",
    "InvalidNameError",
    "LoadedModel",
    "Manifest",
    "ManifestError",
    "ModelLoader",
    "ModelNotFoundError",
    "ModelStoreError",
    "ModelUnavailableError",
    "NotFoundError",
    "NothingToRollBackError",
    "Predictions",
    "Registry",
    "RegistryError",
    "TrainingDataError",
    "VersionExistsError",
    "VersionNotFoundError",
    "batch_model",
    "example_record",
    "load_model",
    "open_registry",
    "predict",
    "record_model",
    "records_matrix",
]
