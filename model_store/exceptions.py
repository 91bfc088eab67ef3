"""Typed errors raised by model_store.

Every failure a caller can act on has its own type; callers (the CLI, the API's error
mapping, the batch engine) branch on these, never on boto or pickle exceptions.
"""

from __future__ import annotations


class ModelStoreError(Exception):
    """Base of every error model_store raises on purpose."""


class InvalidNameError(ModelStoreError, ValueError):
    """A model name, version or alias that cannot be used as a registry path segment."""


class NotFoundError(ModelStoreError, LookupError):
    """Something asked for is not in the registry."""


class ModelNotFoundError(NotFoundError):
    """No version of the model exists."""


class VersionNotFoundError(NotFoundError):
    """The model exists but not that version."""


class AliasNotFoundError(NotFoundError):
    """The alias does not exist for the model."""


class VersionExistsError(ModelStoreError):
    """Versions are immutable: publishing over an existing one is refused."""


class NothingToRollBackError(ModelStoreError):
    """The alias has no earlier version to return to."""


class ManifestError(ModelStoreError):
    """A manifest is missing, unreadable or of a schema this code cannot read."""


class IntegrityError(ModelStoreError):
    """The model bytes do not match what the manifest vouches for."""


class SignatureError(IntegrityError):
    """A manifest's signature is missing, malformed, or not one the required key made."""


class IncompatibleModelError(ModelStoreError):
    """The running libraries cannot safely load the artifact."""


class MissingFormError(ModelStoreError):
    """The model has no form the requested serving runtime can run (no ONNX form, say)."""


class StorageError(ModelStoreError):
    """A storage call failed (an S3 or KMS error, permissions, the network); the message
    names the bucket and key."""


class RegistryError(StorageError):
    """The storage behind the registry failed."""


class DataBucketError(StorageError):
    """The bucket a batch reads its input from or writes its outputs to failed."""


class ModelUnavailableError(ModelStoreError):
    """The loader has no model to serve; the cause is chained."""


class TrainingDataError(ModelStoreError, ValueError):
    """Training data that cannot be used: missing target, non-numeric features, too few rows."""


class InputError(ModelStoreError, ValueError):
    """Records to score that do not fit the model's features."""


class UnscorableError(InputError):
    """Valid, finite numbers the model cannot score: its arithmetic overflows on them.

    ``rows`` maps the index of each such row to why, naming the fields that are the cause.
    """

    def __init__(self, rows: dict[int, str]) -> None:
        self.rows = rows
        first = min(rows)
        more = f" (and {len(rows) - 1} more rows)" if len(rows) > 1 else ""
        super().__init__(f"row {first}: {rows[first]}{more}")
