"""Publishing commands: publish (and promote), add-onnx."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_store.artifact import Artifact
from model_store.cli.options import (
    Parser,
    add_command,
    checked,
    require_dir,
    require_file,
    segment,
)
from model_store.cli.output import UsageError, emit, note, onnx_summary
from model_store.cli.progress import Bar, wanted
from model_store.cli.registries import REF_HELP, registry_from, registry_location, resolve
from model_store.cli.registry_cmds import alias_text, promote_version, summary
from model_store.cli.signing_cmds import add_sign_key_option, signer_from
from model_store.exceptions import ModelStoreError
from model_store.registry.core import check_alias

if TYPE_CHECKING:
    from model_store.cli.options import Subparsers
    from model_store.manifest import Manifest
    from model_store.registry import Registry
    from model_store.signing import Signer


def add_parsers(commands: Subparsers, parents: list[Parser]) -> None:
    p = add_command(
        commands,
        "publish",
        publish,
        parents=parents,
        help="store an artifact directory as a new version",
    )
    p.add_argument("artifact", type=Path, help="directory holding model.joblib and manifest.json")
    p.add_argument(
        "--name", type=segment("model name"), help="model name (default: the manifest's)"
    )
    p.add_argument(
        "--version",
        type=segment("version"),
        help="version (default: UTC timestamp + sha256 prefix, sortable)",
    )
    p.add_argument(
        "--promote",
        metavar="ALIAS",
        type=checked(check_alias),
        help="then point ALIAS (production, staging, ...) at the new version",
    )
    add_sign_key_option(p)

    p = add_command(
        commands,
        "add-onnx",
        add_onnx,
        parents=parents,
        help="publish a version's model with an ONNX form added (for models published before "
        "ONNX forms existed)",
        description="Convert a published version's model.joblib to ONNX, prove parity (edge and "
        "generated rows from its training statistics, plus --data when given) and publish the "
        "same joblib bytes with the ONNX form as a new version. Nothing is published if the "
        "conversion or the proof fails.",
    )
    p.add_argument("ref", metavar="NAME[@VERSION|@ALIAS]", help=REF_HELP)
    p.add_argument(
        "--version", type=segment("version"), help="the new version (default: <version>-onnx)"
    )
    p.add_argument(
        "--data", type=Path, metavar="CSV", help="training CSV to add to the proof's rows"
    )
    p.add_argument("--target", metavar="COLUMN", help="target column of --data")
    add_sign_key_option(p)


def default_version(manifest: Manifest) -> str:
    """Sortable by time, unique per artifact: 20261123T104512Z-<sha256[:8]>."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{manifest.sha256[:8]}"


def publish(args: argparse.Namespace) -> int:
    registry = registry_from(args)
    artifact = Artifact.read(require_dir(args.artifact))
    signer = signer_from(args)  # a key that cannot sign fails here, before any conversion
    if artifact.manifest.onnx is None and artifact.manifest.onnx_refused is None:
        # Made before ONNX forms existed (or elsewhere): convert and prove it now.
        from model_store.onnx_conversion import with_onnx_form

        note(f"{args.artifact} has no ONNX form yet: converting and proving it ...")
        artifact = with_onnx_form(artifact)
    name = args.name or artifact.manifest.name
    version = args.version or default_version(artifact.manifest)
    manifest = upload(args, registry, artifact, name, version, signer)
    promoted = promote_version(registry, name, version, args.promote) if args.promote else None
    lines = [
        f"published {name}@{version} to {registry.location}",
        f"  {onnx_summary(manifest)}",
        f"  {_signed_text(signer)}",
        alias_text(promoted, "now points at")
        if promoted
        else f"next: model-store promote {name} {version} --registry {registry_location(args)}",
    ]
    emit(
        args.json,
        {
            **summary(manifest),
            "signed_by": signer.key_arn if signer else None,
            "promoted": promoted.alias if promoted else None,
        },
        "\n".join(lines),
    )
    return 0


def upload(
    args: argparse.Namespace,
    registry: Registry,
    artifact: Artifact,
    name: str,
    version: str,
    signer: Signer | None,
) -> Manifest:
    """Registry.publish with a bar of the bytes sent."""
    with Bar("uploading", "bytes", show=wanted(args.json)) as bar:

        def sent(done: int, total: int) -> None:
            bar.update(completed=done, total=total)

        manifest = registry.publish(
            artifact,
            name=name,
            version=version,
            signer=signer,
            progress=sent if bar.shown else None,
        )
        bar.finish()
    return manifest


def add_onnx(args: argparse.Namespace) -> int:
    from model_store.onnx_conversion import with_onnx_form

    if (args.data is None) != (args.target is None):
        raise UsageError("--data and --target go together")
    if args.data is not None:
        require_file(args.data)
    registry = registry_from(args)
    signer = signer_from(args)
    name, version = resolve(registry, args.ref)
    manifest = registry.read_manifest(name, version)
    if manifest.onnx is not None:
        emit(
            args.json,
            {**summary(manifest), "added": False},
            f"{name}@{version} already has an ONNX form\n  {onnx_summary(manifest)}",
        )
        return 0
    training = _training_rows(args, manifest) if args.data is not None else None
    artifact = Artifact(registry.read_model_bytes(name, version), manifest)
    note(f"converting {name}@{version} to ONNX and proving it ...")
    converted = with_onnx_form(artifact, training=training)
    if converted.manifest.onnx is None:
        raise ModelStoreError(
            f"{name}@{version} gets no ONNX form: {converted.manifest.onnx_refused}; "
            "nothing was published"
        )
    new_version = args.version or f"{version}-onnx"
    published = upload(args, registry, converted, name, new_version, signer)
    emit(
        args.json,
        {
            **summary(published),
            "added": True,
            "from_version": version,
            "signed_by": signer.key_arn if signer else None,
        },
        f"published {name}@{new_version}: the model of {name}@{version} with an ONNX form\n"
        f"  {onnx_summary(published)}\n"
        f"  {_signed_text(signer)}\n"
        f"next: model-store promote {name} {new_version} --registry {registry_location(args)}",
    )
    return 0


def _training_rows(args: argparse.Namespace, manifest: Manifest) -> Any:
    from model_store.training import load_csv_dataset

    dataset = load_csv_dataset(args.data, args.target)
    if dataset.feature_names != manifest.feature_names:
        raise UsageError(
            f"{args.data} has features {', '.join(dataset.feature_names)}; the model has "
            f"{', '.join(manifest.feature_names)}"
        )
    return dataset.features


def _signed_text(signer: Signer | None) -> str:
    return f"signed by {signer.key_arn}" if signer else "unsigned (publish --sign-key KEY signs)"
