"""Library versions an artifact was made with, and whether the running ones may load it."""

from __future__ import annotations

import logging
import platform
from importlib.metadata import version as dist_version

from pydantic import BaseModel, ConfigDict

from model_store.exceptions import IncompatibleModelError

log = logging.getLogger(__name__)


class RuntimeVersions(BaseModel):
    """Versions that matter for unpickling a scikit-learn model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    python: str
    sklearn: str
    joblib: str
    numpy: str

    @classmethod
    def current(cls) -> RuntimeVersions:
        return cls(
            python=platform.python_version(),
            sklearn=dist_version("scikit-learn"),
            joblib=dist_version("joblib"),
            numpy=dist_version("numpy"),
        )


def _major_minor(version: str) -> tuple[int, int]:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise IncompatibleModelError(f"unparseable scikit-learn version {version!r}") from None


def check_compatible(
    trained_with: RuntimeVersions,
    running: RuntimeVersions,
    *,
    allow_mismatch: bool = False,
) -> None:
    """Refuse an artifact pickled by another scikit-learn major.minor.

    scikit-learn only supports unpickling with the version that pickled; patch releases
    keep estimator state compatible in practice, minor releases do not.
    """
    if _major_minor(trained_with.sklearn) == _major_minor(running.sklearn):
        return
    message = (
        f"model was trained with scikit-learn {trained_with.sklearn} but this runtime has "
        f"scikit-learn {running.sklearn}; the same major.minor is required"
    )
    if not allow_mismatch:
        raise IncompatibleModelError(message)
    log.warning("%s (loading anyway: version mismatch explicitly allowed)", message)
