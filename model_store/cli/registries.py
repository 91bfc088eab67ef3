"""The --registry option, and finding models in it with the same words in every command."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from model_store.cli.options import Parser
from model_store.cli.output import UsageError
from model_store.exceptions import ModelNotFoundError

if TYPE_CHECKING:
    from model_store.registry import Registry

REGISTRY_ENV = "MODEL_STORE_REGISTRY"
REF_HELP = "the model, a version of it or an alias (default alias: production)"


def registry_option() -> Parser:
    parent = Parser(add_help=False)
    parent.add_argument(
        "--registry",
        metavar="LOCATION",
        help=f"s3://BUCKET/PREFIX or a directory (default: ${REGISTRY_ENV})",
    )
    return parent


def registry_location(args: argparse.Namespace) -> str | None:
    """--registry as given, else $MODEL_STORE_REGISTRY (None if neither is set)."""
    location: str | None = args.registry or os.environ.get(REGISTRY_ENV) or None
    return location


def registry_from(args: argparse.Namespace) -> Registry:
    from model_store.registry import open_registry

    location = registry_location(args)
    if not location:
        raise UsageError(
            f"no registry: pass --registry s3://BUCKET/PREFIX or PATH, or set {REGISTRY_ENV}"
        )
    if "://" not in location and Path(location).exists() and not Path(location).is_dir():
        raise UsageError(f"registry {location} is not a directory")
    return open_registry(location)


def require_model(registry: Registry, name: str) -> None:
    """Refuse NAME in the words every command uses when the registry has no such model."""
    if not registry.list_versions(name):
        raise ModelNotFoundError(f"no model named {name!r} in {registry.location}")


def resolve(registry: Registry, ref: str) -> tuple[str, str]:
    """NAME, NAME@VERSION or NAME@ALIAS (default alias production) to (name, version)."""
    require_model(registry, ref.partition("@")[0])
    return registry.resolve_ref(ref)
