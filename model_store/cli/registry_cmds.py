"""Registry commands: publish, list, show, promote, rollback, history."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_store.artifact import Artifact
from model_store.cli.output import UsageError, emit, onnx_summary, progress, table, warn
from model_store.cli.signing_cmds import (
    add_sign_key_option,
    signature_summary,
    signer_from,
    warn_if_less_signed,
)
from model_store.exceptions import ModelNotFoundError, ModelStoreError
from model_store.manifest import Manifest
from model_store.registry import AliasRecord, Registry, open_registry

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

REGISTRY_ENV = "MODEL_STORE_REGISTRY"


def add_registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        default=os.environ.get(REGISTRY_ENV),
        help=f"s3://BUCKET/PREFIX or a directory (default: ${REGISTRY_ENV})",
    )


def registry_from(args: argparse.Namespace) -> Registry:
    if not args.registry:
        raise UsageError(
            f"no registry: pass --registry s3://BUCKET/PREFIX or PATH, or set {REGISTRY_ENV}"
        )
    return open_registry(args.registry)


def add_parsers(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "publish", parents=[common], help="store an artifact directory as a new version"
    )
    p.add_argument("artifact", type=Path, help="directory holding model.joblib and manifest.json")
    p.add_argument("--name", help="model name (default: the manifest's)")
    p.add_argument("--version", help="version (default: UTC timestamp + sha256 prefix, sortable)")
    add_sign_key_option(p)
    p.set_defaults(handler=publish)

    p = commands.add_parser(
        "add-onnx",
        parents=[common],
        help="publish a version's model with an ONNX form added (for models published before "
        "ONNX forms existed)",
        description="Convert a published version's model.joblib to ONNX, prove parity (edge and "
        "generated rows from its training statistics, plus --data when given) and publish the "
        "same joblib bytes with the ONNX form as a new version. Nothing is published if the "
        "conversion or the proof fails.",
    )
    p.add_argument("ref", metavar="NAME[@VERSION|@ALIAS]", help="default alias: production")
    p.add_argument("--version", help="the new version (default: <version>-onnx)")
    p.add_argument("--data", type=Path, help="training CSV to add to the proof's rows")
    p.add_argument("--target", help="target column of --data")
    add_sign_key_option(p)
    p.set_defaults(handler=add_onnx)

    p = commands.add_parser("list", parents=[common], help="list models, or the versions of one")
    p.add_argument("name", nargs="?", help="model name")
    p.set_defaults(handler=list_cmd)

    p = commands.add_parser("show", parents=[common], help="show a version's manifest")
    p.add_argument("ref", metavar="NAME[@VERSION|@ALIAS]", help="default alias: production")
    p.set_defaults(handler=show)

    p = commands.add_parser("promote", parents=[common], help="point an alias at a version")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--alias", default="production")
    p.set_defaults(handler=promote)

    p = commands.add_parser(
        "rollback", parents=[common], help="return an alias to its previous version"
    )
    p.add_argument("name")
    p.add_argument("--alias", default="production")
    p.set_defaults(handler=rollback)

    p = commands.add_parser("history", parents=[common], help="an alias's promotions and rollbacks")
    p.add_argument("name")
    p.add_argument("--alias", default="production")
    p.set_defaults(handler=history)


def default_version(manifest: Manifest) -> str:
    """Sortable by time, unique per artifact: 20261123T104512Z-<sha256[:8]>."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{manifest.sha256[:8]}"


def publish(args: argparse.Namespace) -> int:
    artifact = Artifact.read(args.artifact)
    registry = registry_from(args)
    signer = signer_from(args)  # a key that cannot sign fails here, before any conversion
    if artifact.manifest.onnx is None and artifact.manifest.onnx_refused is None:
        # Made before ONNX forms existed (or elsewhere): convert and prove it now.
        from model_store.onnx_conversion import with_onnx_form

        progress(f"{args.artifact} has no ONNX form yet: converting and proving it ...")
        artifact = with_onnx_form(artifact)
    name = args.name or artifact.manifest.name
    version = args.version or default_version(artifact.manifest)
    manifest = registry.publish(artifact, name=name, version=version, signer=signer)
    emit(
        args.json,
        {**_summary(manifest), "signed_by": signer.key_arn if signer else None},
        f"published {name}@{version} to {registry.location}\n"
        f"  {onnx_summary(manifest)}\n"
        f"  {_signed_text(signer.key_arn if signer else None)}\n"
        f"next: model-store promote {name} {version} --registry {args.registry}",
    )
    return 0


def add_onnx(args: argparse.Namespace) -> int:
    from model_store.onnx_conversion import with_onnx_form

    if (args.data is None) != (args.target is None):
        raise UsageError("--data and --target go together")
    registry = registry_from(args)
    signer = signer_from(args)
    name, version = registry.resolve_ref(args.ref)
    manifest = registry.read_manifest(name, version)
    if manifest.onnx is not None:
        emit(
            args.json,
            {**_summary(manifest), "added": False},
            f"{name}@{version} already has an ONNX form\n  {onnx_summary(manifest)}",
        )
        return 0
    training = _training_rows(args, manifest) if args.data is not None else None
    artifact = Artifact(registry.read_model_bytes(name, version), manifest)
    progress(f"converting {name}@{version} to ONNX and proving it ...")
    converted = with_onnx_form(artifact, training=training)
    if converted.manifest.onnx is None:
        raise ModelStoreError(
            f"{name}@{version} gets no ONNX form: {converted.manifest.onnx_refused}; "
            "nothing was published"
        )
    new_version = args.version or f"{version}-onnx"
    published = registry.publish(converted, name=name, version=new_version, signer=signer)
    emit(
        args.json,
        {
            **_summary(published),
            "added": True,
            "from_version": version,
            "signed_by": signer.key_arn if signer else None,
        },
        f"published {name}@{new_version}: the model of {name}@{version} with an ONNX form\n"
        f"  {onnx_summary(published)}\n"
        f"  {_signed_text(signer.key_arn if signer else None)}\n"
        f"next: model-store promote {name} {new_version} --registry {args.registry}",
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


def list_cmd(args: argparse.Namespace) -> int:
    registry = registry_from(args)
    if not args.name:
        names = registry.list_models()
        aliases = {n: registry.list_aliases(n) for n in names}
        counts = {n: len(registry.list_versions(n)) for n in names}
        data = [{"name": n, "versions": counts[n], "aliases": aliases[n]} for n in names]
        rows = [[n, counts[n], _aliases_text(aliases[n])] for n in names]
        human = (
            table(["model", "versions", "aliases"], rows)
            if rows
            else f"no models in {registry.location}"
        )
        emit(args.json, data, human)
        return 0
    versions = registry.list_versions(args.name)
    if not versions:
        raise ModelNotFoundError(f"no model named {args.name!r} in {registry.location}")
    current = registry.list_aliases(args.name)
    by_version: dict[str, list[str]] = {}
    for alias, version in current.items():
        by_version.setdefault(version, []).append(alias)
    manifests = [registry.read_manifest(args.name, v) for v in versions]
    data_rows = [{**_summary(m), "aliases": by_version.get(m.version or "", [])} for m in manifests]
    rows = [
        [d["version"], ",".join(d["aliases"]), d["algorithm"], d["test_accuracy"], d["created_at"]]
        for d in data_rows
    ]
    emit(
        args.json,
        data_rows,
        table(["version", "aliases", "algorithm", "test acc", "created"], rows),
    )
    return 0


def show(args: argparse.Namespace) -> int:
    registry = registry_from(args)
    name, version = registry.resolve_ref(args.ref)
    manifest = registry.read_manifest(name, version)
    signature = registry.read_signature(name, version)
    data = {
        **manifest.model_dump(mode="json"),
        "signature": signature.model_dump(mode="json") if signature else None,
    }
    features = ", ".join(f"{f.name} [{f.stats.min:g}..{f.stats.max:g}]" for f in manifest.features)
    human = "\n".join(
        [
            f"{manifest.name}@{manifest.version}",
            f"  created     {manifest.created_at:%Y-%m-%d %H:%M:%S %Z}",
            f"  algorithm   {manifest.algorithm} {manifest.params}",
            f"  metrics     cv {manifest.metrics.cv_score:.4f}, "
            f"test accuracy {manifest.metrics.test_accuracy:.4f}",
            f"  features    {features}",
            f"  target      {manifest.target.name}: {', '.join(manifest.target.classes)}",
            f"  artifact    {manifest.size_bytes} bytes, zlib {manifest.compress}, "
            f"sha256 {manifest.sha256}",
            f"  onnx        {onnx_summary(manifest).removeprefix('ONNX form: ')}",
            f"  signature   {signature_summary(signature)}",
            f"  trained on  Python {manifest.runtime.python}, "
            f"scikit-learn {manifest.runtime.sklearn}, joblib {manifest.runtime.joblib}, "
            f"numpy {manifest.runtime.numpy}",
        ]
    )
    emit(args.json, data, human)
    return 0


def promote(args: argparse.Namespace) -> int:
    registry = registry_from(args)
    record = registry.promote(args.name, args.version, alias=args.alias)
    _warn_without_onnx(registry.read_manifest(args.name, record.version))
    warn_if_less_signed(registry, args.name, record.version, _previous(record))
    return _alias_result(args, record, "now points at")


def _warn_without_onnx(manifest: Manifest) -> None:
    if manifest.onnx is None:
        ref = f"{manifest.name}@{manifest.version}"
        warn(
            f"{ref} has no ONNX form ({manifest.onnx_missing_reason}): functions serving the "
            "onnx runtime (ServingRuntime=onnx, the default) keep serving the version they "
            f"have and cannot load it cold; add one with `model-store add-onnx {ref}`"
        )


def rollback(args: argparse.Namespace) -> int:
    registry = registry_from(args)
    record = registry.rollback(args.name, alias=args.alias)
    _warn_without_onnx(registry.read_manifest(args.name, record.version))
    warn_if_less_signed(registry, args.name, record.version, _previous(record))
    return _alias_result(args, record, "rolled back to")


def history(args: argparse.Namespace) -> int:
    record = registry_from(args).alias_record(args.name, args.alias)
    data = [event.model_dump(mode="json") for event in record.history]
    rows = [[e.at.strftime("%Y-%m-%d %H:%M:%S"), e.action, e.version] for e in record.history]
    emit(args.json, data, table(["when (UTC)", "action", "version"], rows))
    return 0


def _alias_result(args: argparse.Namespace, record: AliasRecord, verb: str) -> int:
    emit(
        args.json,
        {"name": record.name, "alias": record.alias, "version": record.version},
        f"{record.name}@{record.alias} {verb} {record.version}",
    )
    return 0


def _previous(record: AliasRecord) -> str | None:
    """The version the alias pointed at before its latest event."""
    return record.history[-2].version if len(record.history) > 1 else None


def _signed_text(key_arn: str | None) -> str:
    return f"signed by {key_arn}" if key_arn else "unsigned (publish --sign-key KEY signs)"


def _summary(manifest: Manifest) -> dict[str, Any]:
    return {
        "name": manifest.name,
        "version": manifest.version,
        "algorithm": manifest.algorithm,
        "test_accuracy": manifest.metrics.test_accuracy,
        "created_at": manifest.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        "sha256": manifest.sha256,
    }


def _aliases_text(aliases: dict[str, str]) -> str:
    return ", ".join(f"{a} -> {v}" for a, v in aliases.items())
