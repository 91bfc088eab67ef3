"""model_store: train, package, version, load and score scikit-learn models.

The public API is what this module exports. It never imports a web framework or a
Lambda runtime; boto3 clients are passed in or built by ``model_store.aws``. Importing it
imports neither scikit-learn nor joblib nor ONNX Runtime: each serving runtime is imported
when a model is first loaded with it.
"""

from model_store.artifact import Artifact
from model_store.exceptions import (
    AliasNotFoundError,
    DataBucketError,
    IncompatibleModelError,
    InputError,
    IntegrityError,
    InvalidNameError,
    ManifestError,
    MissingFormError,
    ModelNotFoundError,
    ModelStoreError,
    ModelUnavailableError,
    NotFoundError,
    NothingToRollBackError,
    RegistryError,
    StorageError,
    TrainingDataError,
    UnscorableError,
    VersionExistsError,
    VersionNotFoundError,
)
from model_store.gate import LoadedModel, load_model
from model_store.manifest import Manifest, OnnxForm, ParityProof
from model_store.registry import Registry, open_registry
from model_store.runtimes import RUNTIME_NAMES, ModelRuntime, RuntimeName
from model_store.schema import (
    batch_model,
    batch_records,
    example_record,
    record_model,
    records_matrix,
)
from model_store.scoring import Predictions
from model_store.serving import ModelLoader

__all__ = [
    "RUNTIME_NAMES",
    "AliasNotFoundError",
    "Artifact",
    "DataBucketError",
    "IncompatibleModelError",
    "InputError",
    "IntegrityError",
    "InvalidNameError",
    "LoadedModel",
    "Manifest",
    "ManifestError",
    "MissingFormError",
    "ModelLoader",
    "ModelNotFoundError",
    "ModelRuntime",
    "ModelStoreError",
    "ModelUnavailableError",
    "NotFoundError",
    "NothingToRollBackError",
    "OnnxForm",
    "ParityProof",
    "Predictions",
    "Registry",
    "RegistryError",
    "RuntimeName",
    "StorageError",
    "TrainingDataError",
    "UnscorableError",
    "VersionExistsError",
    "VersionNotFoundError",
    "batch_model",
    "batch_records",
    "example_record",
    "load_model",
    "open_registry",
    "record_model",
    "records_matrix",
]
