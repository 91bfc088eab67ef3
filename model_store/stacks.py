"""The deployed stack the CLI talks to, and its outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from model_store.aws_errors import describe_error
from model_store.exceptions import ModelStoreError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

STACK_ENV = "STACK_NAME"
DEFAULT_STACK = "sklearn-serverless"


class StackOutputError(ModelStoreError):
    """The stack, or the output asked for, cannot be found."""


def stack_output(
    cloudformation: CloudFormationClient, stack: str, output: str, *, instead: str
) -> str:
    """The value of STACK's OUTPUT; the error names the option (INSTEAD) that avoids it."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except Exception as exc:
        raise StackOutputError(f"finding stack {stack!r} failed: {describe_error(exc)}") from None
    for found in stacks[0].get("Outputs", []) if stacks else []:
        if found.get("OutputKey") == output:
            return str(found["OutputValue"])
    raise StackOutputError(f"stack {stack!r} has no {output} output; pass {instead}")
