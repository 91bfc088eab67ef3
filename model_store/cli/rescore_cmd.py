"""``model-store rescore``: score a data-bucket CSV in shards again, by hand."""

from __future__ import annotations

import argparse
import functools
import os
from typing import TYPE_CHECKING

from model_store.aws import cloudformation_client, s3_client, stepfunctions_client
from model_store.cli.options import Parser, add_command
from model_store.cli.output import UsageError, emit
from model_store.stacks import DEFAULT_STACK, STACK_ENV, stack_output

if TYPE_CHECKING:
    from model_store.cli.options import Subparsers

OUTPUT = "ShardedScoringStateMachineArn"


def add_parser(commands: Subparsers, parents: list[Parser]) -> None:
    parser = add_command(
        commands,
        "rescore",
        run,
        parents=parents,
        help="score a CSV in the data bucket again, in shards (a sharded run that failed)",
        description="Start a new execution of the stack's sharded-scoring state machine for "
        "s3://BUCKET/KEY: a new name each time (Step Functions keeps a name for 90 days), "
        "and a 'running' report in place of the last one.",
    )
    parser.add_argument("location", metavar="s3://BUCKET/KEY", help="the CSV to score")
    parser.add_argument("--version-id", help="the object version (default: the current one)")
    parser.add_argument(
        "--stack",
        help=f"stack whose {OUTPUT} output to use (default: ${STACK_ENV} or {DEFAULT_STACK})",
    )
    parser.add_argument(
        "--state-machine", metavar="ARN", help="the state machine (instead of looking up --stack)"
    )


def _location(text: str) -> tuple[str, str]:
    bucket, _, key = text.removeprefix("s3://").partition("/")
    if not text.startswith("s3://") or not bucket or not key or key.endswith("/"):
        raise UsageError(f"expected s3://BUCKET/KEY of a CSV, got {text!r}")
    return bucket, key


def run(args: argparse.Namespace) -> int:
    from model_store.batch.handover import start_execution
    from model_store.batch.s3 import rescore_s3_object

    bucket, key = _location(args.location)
    arn: str = args.state_machine or stack_output(
        cloudformation_client(),
        args.stack or os.environ.get(STACK_ENV) or DEFAULT_STACK,
        OUTPUT,
        instead="--state-machine",
    )
    start = functools.partial(start_execution, stepfunctions_client(), arn)
    report = rescore_s3_object(s3_client(), bucket, key, start, version_id=args.version_id)
    emit(
        args.json,
        report.model_dump(mode="json"),
        f"started {report.execution} for s3://{bucket}/{key}\n"
        f"its report: {report.source.location} -> the report key (now 'running')",
    )
    return 0
