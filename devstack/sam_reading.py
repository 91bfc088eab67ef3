"""aws-sam-cli's template reading, as devstack.template uses it.

samcli's translator wrapper runs SAM's plugins, its intrinsic resolver and symbol table
resolve the properties, and its function provider reads the functions, as `sam local`
does (SamBaseProvider.get_template, SamFunctionProvider). What is overridden here is where
samcli's resolution is not CloudFormation's, or where devstack names what samcli does not.
Imported only when a template is read: samcli's translator costs ~0.5 s of imports.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from samcli.commands.validate.lib.exceptions import InvalidSamDocumentException
from samcli.lib.build.exceptions import MissingFunctionHandlerException
from samcli.lib.intrinsic_resolver.intrinsic_property_resolver import IntrinsicResolver
from samcli.lib.intrinsic_resolver.intrinsics_symbol_table import IntrinsicsSymbolTable
from samcli.lib.intrinsic_resolver.invalid_intrinsic_exception import (
    InvalidIntrinsicException,
    InvalidSymbolException,
)
from samcli.lib.providers.exceptions import InvalidLayerReference
from samcli.lib.providers.provider import Stack
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.samlib.resource_metadata_normalizer import ResourceMetadataNormalizer
from samcli.lib.samlib.wrapper import SamTranslatorWrapper

from devstack.template import NO_VALUE, TemplateError, scalar

# The aws-sam-cli whose internals this module calls: pyproject.toml pins the same, and
# tests/unit/local_stack/test_samcli_reading.py checks both and the calls' signatures.
SAMCLI_VERSION = "1.170.0"
RESOLVE_ERRORS = (InvalidIntrinsicException, InvalidSymbolException)
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def plugged_resources(
    path: Path, document: Mapping[str, Any], values: Mapping[str, Any]
) -> dict[str, Any]:
    """The resources after SAM's plugins, as `sam local` has them (the first step of
    SamBaseProvider.get_template): Globals merged into each function and API, an implicit
    API for events without a RestApiId; intrinsics still in place."""
    wrapper = SamTranslatorWrapper(document, parameter_values=dict(values))
    try:
        with warnings.catch_warnings():
            # samcli's parser runs samtranslator's SamTemplateValidator, deprecated since,
            # and ignores what it returns.
            warnings.filterwarnings("ignore", ".* is deprecated", DeprecationWarning)
            plugged = wrapper.run_plugins()
    except InvalidSamDocumentException as exc:
        raise TemplateError(f"{path}: {exc}") from None
    ResourceMetadataNormalizer.normalize(plugged)
    resources: dict[str, Any] = plugged["Resources"]
    return resources


def sam_functions(path: Path, resources: dict[str, Any]) -> dict[str, Any]:
    """samcli's Function of each function of RESOURCES (already resolved), by logical id."""
    try:
        provider = SamFunctionProvider(
            [_ResolvedStack(path, resources)], ignore_code_extraction_warnings=True
        )
    except (MissingFunctionHandlerException, InvalidLayerReference) as exc:
        raise TemplateError(f"{path}: {type(exc).__name__} {exc}") from None
    return {function.name: function for function in provider.get_all()}


class LocalSymbols(IntrinsicsSymbolTable):  # type: ignore[misc]
    """samcli's symbol table with devstack's names for the resources it makes, and strict:
    where samcli falls back to the logical id (any Ref), a Lambda ARN (any Arn) or the text
    "$Name.Attr", the value stays unresolved, and reading it says so."""

    def __init__(
        self,
        template: Mapping[str, Any],
        values: dict[str, Any],
        names: Callable[[str], Mapping[str, str] | None],
    ) -> None:
        self._names = names
        super().__init__(template=template, logical_id_translator=values)

    def get_default_attribute_resolver(self) -> dict[str, Any]:
        return {}

    def resolve_symbols(
        self, logical_id: str, resource_attribute: str, ignore_errors: bool = False
    ) -> Any:
        names = self._names(logical_id)
        if names is not None and resource_attribute in names:
            return names[resource_attribute]
        return super().resolve_symbols(logical_id, resource_attribute, ignore_errors=False)


class LocalResolver(IntrinsicResolver):  # type: ignore[misc]
    """samcli's intrinsic resolver, with CloudFormation's Fn::If and Fn::Sub."""

    def condition(self, name: str) -> bool:
        declared = self._conditions.get(name)
        if declared is None:
            raise InvalidIntrinsicException(f"condition {name} is not declared in Conditions")
        value = self.intrinsic_property_resolver(declared, False, parent_function=name)
        if not isinstance(value, bool):
            raise InvalidIntrinsicException(f"condition {name} is {value!r}, not true or false")
        return value

    def handle_fn_if(self, intrinsic_value: Any, ignore_errors: bool) -> Any:
        # samcli resolves both branches before it looks at the condition, so a branch it
        # cannot resolve spoils the value even when the condition never picks it;
        # CloudFormation reads the picked branch only.
        if not (isinstance(intrinsic_value, list) and len(intrinsic_value) == 3):
            raise InvalidIntrinsicException(
                f"Fn::If takes [condition, then, else]: {intrinsic_value!r}"
            )
        name, when_true, when_false = intrinsic_value
        branch = when_true if self.condition(name) else when_false
        return self.intrinsic_property_resolver(branch, ignore_errors, parent_function="Fn::If")

    def handle_fn_sub(self, intrinsic_value: Any, ignore_errors: bool) -> str:
        # samcli looks the values of the variable map up as logical ids (a value with a dot
        # becomes "$a.b") and leaves ${!Name} as it is; CloudFormation substitutes the values
        # and makes ${!Name} the literal ${Name}.
        text, variables = (
            (intrinsic_value, {}) if isinstance(intrinsic_value, str) else intrinsic_value
        )
        if not (isinstance(text, str) and isinstance(variables, dict)):
            raise InvalidIntrinsicException(
                f"Fn::Sub takes a string and a map: {intrinsic_value!r}"
            )
        values = self.intrinsic_property_resolver(variables, ignore_errors, "Fn::Sub")

        def substitute(match: re.Match[str]) -> str:
            name = match[1]
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                value = values[name]
            elif "." in name and not name.startswith("AWS::"):
                value = self._symbol_resolver.resolve_symbols(*name.split(".", 1))
            else:
                value = self._symbol_resolver.resolve_symbols(name, "Ref")
            if value is None or value == NO_VALUE or isinstance(value, dict | list):
                raise InvalidSymbolException(f"Fn::Sub: ${{{name}}} is {value!r}")
            return scalar(value)

        return _SUB_VARIABLE.sub(substitute, text)


class _ResolvedStack(Stack):  # type: ignore[misc]
    """The root stack for samcli's function provider, with the resources resolved here
    (Stack.resources would resolve them again, with samcli's own symbol table)."""

    def __init__(self, location: Path, resources: dict[str, Any]) -> None:
        super().__init__("", "", str(location), None, {"Resources": resources})

    @property
    def resources(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.template_dict["Resources"]
        return resources
