"""template.yaml as `sam deploy` hands it to CloudFormation: packaged, with the parameter
values the transform receives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devstack.template import read_document

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

PSEUDO_PARAMETERS: dict[str, Any] = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "sklearn-serverless",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}


def document() -> dict[str, Any]:
    """template.yaml as samcli parses it, a copy of the caller's own."""
    return read_document(TEMPLATE)


def parameter_values(overrides: dict[str, Any]) -> dict[str, Any]:
    """What the transform receives: pseudo parameters, the overrides, then the defaults."""
    raw = document()
    defaults = {k: v["Default"] for k, v in raw["Parameters"].items() if "Default" in v}
    return {**defaults, **PSEUDO_PARAMETERS, **overrides}


class NoManagedPolicies:
    """Stands in for samtranslator's ManagedPolicyLoader: no IAM call, no names to map
    (the template names no managed policy by its short name)."""

    def load(self) -> dict[str, str]:
        return {}


def package(template: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` (run by `sam deploy`) does to the template: local code paths
    become the S3 objects it uploaded."""
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
                suffix = "asl.json" if key == "DefinitionUri" else "zip"
                properties[key] = f"s3://sam-artifacts-123456789012/{logical_id}.{suffix}"
    return template
