"""Signing commands (sign, verify) and the --sign-key option of the publishing commands."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from model_store.cli.options import Parser, add_command
from model_store.cli.output import emit, warn
from model_store.cli.registries import REF_HELP, registry_from, resolve
from model_store.exceptions import SignatureError

if TYPE_CHECKING:
    from model_store.cli.options import Subparsers
    from model_store.registry import Registry
    from model_store.signing import Signature, Signer

SIGN_KEY_ENV = "MODEL_STORE_SIGN_KEY"


def add_sign_key_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    default = os.environ.get(SIGN_KEY_ENV) or None
    parser.add_argument(
        "--sign-key",
        metavar="KMS_KEY",
        default=default,
        required=required and default is None,
        help="sign the manifest with this asymmetric KMS key (id, ARN or alias; "
        f"default: ${SIGN_KEY_ENV}); functions with ModelSigningKeyArn set serve only "
        "versions signed by it",
    )


def signer_from(args: argparse.Namespace) -> Signer | None:
    if not args.sign_key:
        return None
    from model_store.signing import KmsSigner

    return KmsSigner(args.sign_key)


def add_parsers(commands: Subparsers, parents: list[Parser]) -> None:
    p = add_command(
        commands,
        "sign",
        sign,
        parents=parents,
        help="sign a published version's manifest with a KMS key",
        description="Write NAME@VERSION's manifest.sig: a KMS signature over the manifest's "
        "exact bytes, its name and version. For versions published before signing was "
        "required; `publish --sign-key` signs as it publishes.",
    )
    p.add_argument("ref", metavar="NAME[@VERSION|@ALIAS]", help=REF_HELP)
    add_sign_key_option(p, required=True)
    p.add_argument("--replace", action="store_true", help="replace an existing signature")

    p = add_command(
        commands,
        "verify",
        verify,
        parents=parents,
        help="check a version's signature with kms:Verify, as the functions do",
    )
    p.add_argument("ref", metavar="NAME[@VERSION|@ALIAS]", help=REF_HELP)
    p.add_argument("--key", required=True, metavar="KEY_ARN", help="the key the stack requires")


def sign(args: argparse.Namespace) -> int:
    registry = registry_from(args)
    name, version = resolve(registry, args.ref)
    signer = signer_from(args)
    assert signer is not None  # --sign-key is required here
    signature = registry.sign(name, version, signer, replace=args.replace)
    return _signature_result(args, name, version, signature, "signed")


def verify(args: argparse.Namespace) -> int:
    from model_store.signing import KmsVerifier

    registry = registry_from(args)
    name, version = resolve(registry, args.ref)
    registry.read_manifest(name, version, verifier=KmsVerifier(args.key))
    signature = registry.read_signature(name, version)
    if signature is None:  # read_manifest refuses an unsigned version first
        raise SignatureError(f"{name}@{version} is not signed")
    return _signature_result(args, name, version, signature, "verified:")


def _signature_result(
    args: argparse.Namespace, name: str, version: str, signature: Signature, verb: str
) -> int:
    emit(
        args.json,
        {"name": name, "version": version, **signature.model_dump(mode="json")},
        f"{name}@{version} {verb} {signature.signing_algorithm} by {signature.key_arn}",
    )
    return 0


def signature_summary(signature: Signature | None) -> str:
    if signature is None:
        return "unsigned"
    return (
        f"{signature.signing_algorithm} by {signature.key_arn} "
        f"({signature.signed_at:%Y-%m-%d %H:%M:%S %Z}; not verified here: `model-store verify`)"
    )


def warn_if_less_signed(registry: Registry, name: str, version: str, previous: str | None) -> None:
    """Warn when an alias moves from a signed version to an unsigned one: functions that
    require signatures will keep the version they have and refuse this one."""
    if previous is None or previous == version:
        return
    if registry.read_signature(name, previous) and not registry.read_signature(name, version):
        warn(
            f"{name}@{version} is not signed, and {name}@{previous} was: functions that require "
            f"signatures (ModelSigningKeyArn) will refuse it; sign it with "
            f"`model-store sign {name}@{version} --sign-key KEY`"
        )
