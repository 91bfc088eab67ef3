"""API keys of a deployed stack: create (shown once), list, revoke.

Keys belong to the stack's usage plan (its throttle and quota apply to them). The plan is
found in the stack's ``UsagePlanId`` output, or given directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from model_store.aws_errors import describe_error
from model_store.exceptions import ModelStoreError
from model_store.stacks import StackOutputError, stack_output

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_cloudformation import CloudFormationClient


class KeyManagementError(ModelStoreError):
    """The stack, usage plan or key cannot be found or changed."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    enabled: bool
    created: datetime | None
    value: str | None = None  # only right after creation


def _fail(action: str, exc: Exception) -> KeyManagementError:
    return KeyManagementError(f"{action} failed: {describe_error(exc)}")


def usage_plan_of_stack(cloudformation: CloudFormationClient, stack: str) -> str:
    try:
        return stack_output(cloudformation, stack, "UsagePlanId", instead="--usage-plan")
    except StackOutputError as exc:
        raise KeyManagementError(str(exc)) from None


def create_key(apigateway: APIGatewayClient, usage_plan_id: str, name: str) -> ApiKey:
    """A new enabled key in the plan; its value is returned this once."""
    try:
        apigateway.get_usage_plan(usagePlanId=usage_plan_id)
        key = apigateway.create_api_key(name=name, enabled=True, generateDistinctId=True)
        apigateway.create_usage_plan_key(
            usagePlanId=usage_plan_id, keyId=key["id"], keyType="API_KEY"
        )
    except Exception as exc:
        raise _fail(f"creating key {name!r} in usage plan {usage_plan_id}", exc) from None
    return ApiKey(
        key["id"],
        key.get("name", name),
        key.get("enabled", True),
        key.get("createdDate"),
        key.get("value"),
    )


def list_keys(apigateway: APIGatewayClient, usage_plan_id: str) -> list[ApiKey]:
    try:
        pages = apigateway.get_paginator("get_usage_plan_keys").paginate(usagePlanId=usage_plan_id)
        ids = [item["id"] for page in pages for item in page.get("items", [])]
        keys = [apigateway.get_api_key(apiKey=key_id) for key_id in ids]
    except Exception as exc:
        raise _fail(f"listing keys of usage plan {usage_plan_id}", exc) from None
    return [
        ApiKey(k["id"], k.get("name", ""), k.get("enabled", False), k.get("createdDate"))
        for k in keys
    ]


def revoke_key(apigateway: APIGatewayClient, usage_plan_id: str, key_id: str) -> None:
    """Remove the key from the plan and delete it: requests with it get 403 from then on."""
    if key_id not in {k.id for k in list_keys(apigateway, usage_plan_id)}:
        raise KeyManagementError(f"usage plan {usage_plan_id} has no key {key_id!r}")
    try:
        apigateway.delete_usage_plan_key(usagePlanId=usage_plan_id, keyId=key_id)
        apigateway.delete_api_key(apiKey=key_id)
    except Exception as exc:
        raise _fail(f"revoking key {key_id}", exc) from None
