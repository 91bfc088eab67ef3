"""Registry commands: list, show, promote, rollback, history."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from model_store.cli.options import Parser, add_command, checked
from model_store.cli.output import emit, onnx_summary, table, warn
from model_store.cli.registries import REF_HELP, registry_from, require_model, resolve
from model_store.cli.signing_cmds import signature_summary, warn_if_less_signed
from model_store.registry.core import check_alias

if TYPE_CHECKING:
    from model_store.cli.options import Subparsers
    from model_store.manifest import Manifest
    from model_store.registry import AliasRecord, Registry


def alias_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--alias", type=checked(check_alias), default="production", help=help_text)


def add_parsers(commands: Subparsers, parents: list[Parser]) -> None:
    p = add_command(
        commands, "list", list_cmd, parents=parents, help="list models, or the versions of one"
    )
    p.add_argument("name", nargs="?", help="a model: list its versions (default: every model)")

    p = add_command(commands, "show", show, parents=parents, help="show a version's manifest")
    p.add_argument("ref", metavar="NAME[@VERSION|@ALIAS]", help=REF_HELP)

    p = add_command(
        commands, "promote", promote, parents=parents, help="point an alias at a version"
    )
    p.add_argument("name", help="the model")
    p.add_argument("version", help="the published version the alias moves to")
    alias_option(p, "the alias to move (default: production)")

    p = add_command(
        commands,
        "rollback",
        rollback,
        parents=parents,
        help="return an alias to its previous version",
    )
    p.add_argument("name", help="the model")
    alias_option(p, "the alias to move back (default: production)")

    p = add_command(
        commands, "history", history, parents=parents, help="an alias's promotions and rollbacks"
    )
    p.add_argument("name", help="the model")
    alias_option(p, "the alias whose history to show (default: production)")


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
    require_model(registry, args.name)
    current = registry.list_aliases(args.name)
    by_version: dict[str, list[str]] = {}
    for alias, version in current.items():
        by_version.setdefault(version, []).append(alias)
    manifests = [registry.read_manifest(args.name, v) for v in registry.list_versions(args.name)]
    data_rows = [{**summary(m), "aliases": by_version.get(m.version or "", [])} for m in manifests]
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
    name, version = resolve(registry, args.ref)
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
    record = promote_version(registry, args.name, args.version, args.alias)
    return alias_result(args, record, "now points at")


def promote_version(registry: Registry, name: str, version: str, alias: str) -> AliasRecord:
    """Move ALIAS to VERSION, warning when functions would not serve it as they do now."""
    record = registry.promote(name, version, alias=alias)
    _warn_about(registry, record)
    return record


def _warn_about(registry: Registry, record: AliasRecord) -> None:
    _warn_without_onnx(registry.read_manifest(record.name, record.version))
    warn_if_less_signed(registry, record.name, record.version, _previous(record))


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
    require_model(registry, args.name)
    record = registry.rollback(args.name, alias=args.alias)
    _warn_about(registry, record)
    return alias_result(args, record, "rolled back to")


def history(args: argparse.Namespace) -> int:
    registry = registry_from(args)
    require_model(registry, args.name)
    record = registry.alias_record(args.name, args.alias)
    data = [event.model_dump(mode="json") for event in record.history]
    rows = [[e.at.strftime("%Y-%m-%d %H:%M:%S"), e.action, e.version] for e in record.history]
    emit(args.json, data, table(["when (UTC)", "action", "version"], rows))
    return 0


def alias_result(args: argparse.Namespace, record: AliasRecord, verb: str) -> int:
    emit(
        args.json,
        {"name": record.name, "alias": record.alias, "version": record.version},
        alias_text(record, verb),
    )
    return 0


def alias_text(record: AliasRecord, verb: str) -> str:
    return f"{record.name}@{record.alias} {verb} {record.version}"


def _previous(record: AliasRecord) -> str | None:
    """The version the alias pointed at before its latest event."""
    return record.history[-2].version if len(record.history) > 1 else None


def summary(manifest: Manifest) -> dict[str, Any]:
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
