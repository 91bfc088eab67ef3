"""``model-store keys``: API keys of a deployed stack."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from model_store.apikeys import create_key, list_keys, revoke_key, usage_plan_of_stack
from model_store.aws import apigateway_client, cloudformation_client
from model_store.cli.options import Parser, add_command
from model_store.cli.output import emit, table, warn
from model_store.stacks import DEFAULT_STACK, STACK_ENV

if TYPE_CHECKING:
    from model_store.cli.options import Subparsers


def add_parser(commands: Subparsers, parents: list[Parser]) -> None:
    where = Parser(add_help=False)
    where.add_argument(
        "--stack",
        help=f"stack whose UsagePlanId output to use (default: ${STACK_ENV} or {DEFAULT_STACK})",
    )
    where.add_argument(
        "--usage-plan", metavar="ID", help="usage plan id (instead of looking up --stack)"
    )
    keys = commands.add_parser("keys", help="create, list and revoke API keys of a stack")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    both = [*parents, where]
    create = add_command(
        actions, "create", create_cmd, parents=both, help="create a key (shown once)"
    )
    create.add_argument("name", help="a name for the key (who or what uses it)")
    add_command(actions, "list", list_cmd, parents=both, help="keys of the usage plan")
    revoke = add_command(actions, "revoke", revoke_cmd, parents=both, help="delete a key")
    revoke.add_argument("key_id", metavar="ID", help="the key's id (from `keys list`)")


def _plan(args: argparse.Namespace) -> str:
    if args.usage_plan:
        if args.stack:
            warn(f"--stack {args.stack} is not used: --usage-plan {args.usage_plan} names the plan")
        plan: str = args.usage_plan
        return plan
    stack = args.stack or os.environ.get(STACK_ENV) or DEFAULT_STACK
    return usage_plan_of_stack(cloudformation_client(), stack)


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
