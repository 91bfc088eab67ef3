"""``model-store keys``: API keys of a deployed stack."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from model_store.apikeys import create_key, list_keys, revoke_key, usage_plan_of_stack
from model_store.aws import apigateway_client, cloudformation_client
from model_store.cli.output import emit, table

if TYPE_CHECKING:
    from model_store.cli.registry_cmds import Subparsers

STACK_ENV = "STACK_NAME"


def add_parser(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--stack",
        default=os.environ.get(STACK_ENV, "sklearn-serverless"),
        help=f"stack whose UsagePlanId output to use (default: ${STACK_ENV} or sklearn-serverless)",
    )
    where.add_argument("--usage-plan", help="usage plan id (instead of looking up --stack)")
    keys = commands.add_parser("keys", help="create, list and revoke API keys of a stack")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[common, where], help="create a key (shown once)")
    create.add_argument("name")
    create.set_defaults(handler=create_cmd)
    listing = actions.add_parser("list", parents=[common, where], help="keys of the usage plan")
    listing.set_defaults(handler=list_cmd)
    revoke = actions.add_parser("revoke", parents=[common, where], help="delete a key")
    revoke.add_argument("key_id", metavar="ID")
    revoke.set_defaults(handler=revoke_cmd)


def _plan(args: argparse.Namespace) -> str:
    return args.usage_plan or usage_plan_of_stack(cloudformation_client(), args.stack)


def create_cmd(args: argparse.Namespace) -> int:
    plan = _plan(args)
    key = create_key(apigateway_client(), plan, args.name)
    emit(
        args.json,
        {"id": key.id, "name": key.name, "value": key.value, "usage_plan": plan},
        f"created key {key.name} ({key.id}) in usage plan {plan}\n"
        f"value (shown only now; store it safely): {key.value}\n"
        f"use it as:  curl -H 'x-api-key: {key.value}' ...",
    )
    return 0


def list_cmd(args: argparse.Namespace) -> int:
    plan = _plan(args)
    keys = list_keys(apigateway_client(), plan)
    rows = [[k.id, k.name, "yes" if k.enabled else "no", k.created or ""] for k in keys]
    emit(
        args.json,
        [{"id": k.id, "name": k.name, "enabled": k.enabled, "created": k.created} for k in keys],
        table(["id", "name", "enabled", "created"], rows) if rows else f"no keys in {plan}",
    )
    return 0


def revoke_cmd(args: argparse.Namespace) -> int:
    plan = _plan(args)
    revoke_key(apigateway_client(), plan, args.key_id)
    emit(args.json, {"revoked": args.key_id}, f"revoked key {args.key_id}")
    return 0
