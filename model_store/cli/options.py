"""How the commands are parsed: one ``error:`` line for every mistake, values checked by
argparse before anything runs, and the options several commands share."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from model_store.cli.output import UsageError
from model_store.registry.core import check_segment


class Parser(argparse.ArgumentParser):
    """argparse, with its mistakes worded like every other: usage, then ``error: ...``."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[Parser]


def add_command(
    commands: Subparsers,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    parents: list[Parser],
    **kwargs: Any,
) -> Parser:
    """A subcommand whose handler runs it; ``parser`` is kept for its usage line."""
    parser = commands.add_parser(name, parents=parents, **kwargs)
    parser.set_defaults(handler=handler, parser=parser)
    return parser


def json_option() -> Parser:
    parent = Parser(add_help=False)
    parent.add_argument(
        "--json", action="store_true", help="print JSON (for scripts) instead of text"
    )
    return parent


# -- value types: argparse reports their ArgumentTypeError as "argument --X: <message>" ---


def integer(
    minimum: int | None = None, maximum: int | None = None, *, zero: str | None = None
) -> Callable[[str], int]:
    """A whole number within [MINIMUM, MAXIMUM]; ZERO, when given, refuses 0 with that text."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if zero is not None and value == 0:
            raise argparse.ArgumentTypeError(zero)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{value} is out of range: {_range(minimum, maximum)}")
        return value

    return parse


def _range(minimum: int | None, maximum: int | None) -> str:
    if maximum is None:
        return f"use {minimum} or more"
    if minimum is None:
        return f"use {maximum} or less"
    return f"use {minimum} to {maximum}"


def number(*, above: float, below: float | None = None) -> Callable[[str], float]:
    """A finite number strictly between ABOVE and BELOW (no upper bound without BELOW)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value <= above or (below is not None and value >= below):
            bounds = f"between {above:g} and {below:g}" if below is not None else f"above {above:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: use a number {bounds}")
        return value

    return parse


def checked(check: Callable[[str], object]) -> Callable[[str], str]:
    """A text value that CHECK accepts (a registry name, version or alias check)."""

    def parse(text: str) -> str:
        try:
            check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return parse


def segment(kind: str) -> Callable[[str], str]:
    """A model name or version as the registry accepts it (KIND names it in the error)."""
    return checked(lambda text: check_segment(kind, text))


# -- paths, checked when the command starts (before minutes of work) --------------------


def require_file(path: Path) -> Path:
    if not path.is_file():
        raise UsageError(f"{path} is not a file")
    return path


def require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory")
    return path


def writable_dir(path: Path) -> Path:
    """PATH is a directory that can be written, or one that can be made."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{path} cannot be a directory: {existing} is not one")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{path} cannot be written: {existing} is not writable")
    return path
