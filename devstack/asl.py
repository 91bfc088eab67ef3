"""State machine definitions as CloudFormation hands them to Step Functions.

An AWS::Serverless::StateMachine's definition is a file (DefinitionUri) or inline
(Definition); CloudFormation replaces each ${Name} in it with the value
DefinitionSubstitutions gives Name. A ${Name} with no value would reach Step Functions as
literal text and fail only when the state runs (a task's FunctionName
"${ShardFunctionArn}"): here it is an error naming it.

`sam build` leaves a DefinitionUri's file where it is and rewrites the path relative to
the built template (../../statemachine/x.asl.json): the caller says where that is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.template import TemplateError

_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def substitute(where: str, text: str, values: Mapping[str, str]) -> str:
    """TEXT with each ${Name} replaced by VALUES[Name], as CloudFormation does."""
    missing = sorted({name for name in _VARIABLE.findall(text) if name not in values})
    if missing:
        shown = ", ".join("${" + name + "}" for name in missing)
        raise TemplateError(
            f"{where}: the definition uses {shown}, which DefinitionSubstitutions does not set"
        )
    return _VARIABLE.sub(lambda match: values[match[1]], text)


def read_definition(
    where: str, properties: Mapping[str, Any], base_dir: Path, substitutions: Mapping[str, str]
) -> dict[str, Any]:
    """The definition PROPERTIES give (DefinitionUri relative to BASE_DIR), substituted."""
    uri = properties.get("DefinitionUri")
    inline = properties.get("Definition")
    if (uri is None) == (inline is None):
        raise TemplateError(f"{where}: give either Definition or DefinitionUri")
    if inline is not None:
        if not isinstance(inline, dict):
            raise TemplateError(f"{where}: Definition must be a map")
        source, text = "Definition", json.dumps(inline)
    else:
        if not isinstance(uri, str) or uri.startswith("s3://"):
            raise TemplateError(f"{where}: DefinitionUri {uri!r}: only a local file runs here")
        source = f"DefinitionUri {base_dir / uri}"
        try:
            text = (base_dir / uri).read_text()
        except OSError as exc:
            raise TemplateError(f"{where}: cannot read {source}: {exc}") from None
    try:
        document = json.loads(substitute(where, text, substitutions))
    except ValueError as exc:
        raise TemplateError(f"{where}: {source}, substituted, is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("States"), dict):
        raise TemplateError(f"{where}: the definition has no States")
    return document
