"""A model in the local registry, so the stack answers predictions from the first request.

Trained once (the full grid search, on iris) and kept under .local/seed, then published
to the fresh local S3 on every start when the registry has no version of the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from model_store import Artifact
from model_store.registry import Registry, S3Store
from model_store.training import build_artifact, load_iris_dataset, train

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from model_store.signing import Signer

SEED_VERSION = "1"


def seed_artifact(name: str, cache_dir: Path, log: Callable[[str], None]) -> Artifact:
    directory = cache_dir / name
    if (directory / "manifest.json").exists():
        artifact = Artifact.read(directory)
        if artifact.manifest.onnx is None and artifact.manifest.onnx_refused is None:
            # Kept from before ONNX forms existed: add one, as `model-store publish` would.
            from model_store.onnx_conversion import with_onnx_form

            log(f"adding an ONNX form to the kept {name} model in {directory}")
            artifact = with_onnx_form(artifact)
            artifact.write(directory)
        return artifact
    log(f"training {name} on iris (six algorithms, once; kept in {directory})")
    result = train(load_iris_dataset(), n_jobs=-1)
    artifact = build_artifact(result, name=name)
    artifact.write(directory)
    return artifact


def seed_registry(
    *,
    s3: S3Client,
    environment: Mapping[str, str],
    cache_dir: Path,
    log: Callable[[str], None],
    signer: Signer | None = None,
) -> str | None:
    """Publish (signed with SIGNER if given) and promote the seed model if MODEL_NAME has
    no version; the version made."""
    name = environment.get("MODEL_NAME") or "iris"
    alias = environment.get("MODEL_ALIAS") or "production"
    registry = Registry(
        S3Store(s3, environment["MODEL_BUCKET"], environment.get("MODEL_PREFIX", ""))
    )
    if registry.list_versions(name):
        return None
    artifact = seed_artifact(name, cache_dir, log)
    registry.publish(artifact, name=name, version=SEED_VERSION, signer=signer)
    registry.promote(name, SEED_VERSION, alias=alias)
    signed = " (signed)" if signer is not None else ""
    log(
        f"published {name}@{SEED_VERSION}{signed} to {registry.location} and promoted it to {alias}"
    )
    return SEED_VERSION
