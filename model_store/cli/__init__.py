"""The ``model-store`` command line.

Only what a command needs is imported: scikit-learn when it trains or scores with it,
rich when it draws a progress bar on a terminal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from model_store.cli import (
    keys_cmd,
    publish_cmds,
    registry_cmds,
    rescore_cmd,
    score_cmd,
    signing_cmds,
    train_cmd,
)
from model_store.cli.options import Parser, json_option
from model_store.cli.output import UsageError, error, unexpected_error
from model_store.cli.registries import registry_option
from model_store.exceptions import ModelStoreError

PACKAGE = "sklearn-serverless"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> Parser:
    parser = Parser(
        prog="model-store",
        description="Train, publish, version and promote scikit-learn models.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {package_version()}",
        help="print the version of model-store and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    as_json, registry = json_option(), registry_option()
    train_cmd.add_parser(commands, [as_json])
    publish_cmds.add_parsers(commands, [as_json, registry])
    registry_cmds.add_parsers(commands, [as_json, registry])
    signing_cmds.add_parsers(commands, [as_json, registry])
    score_cmd.add_parser(commands, [as_json, registry])
    keys_cmd.add_parser(commands, [as_json])
    rescore_cmd.add_parser(commands, [as_json])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if extra:  # said with the usage of the command they were given to
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.handler(args)
    except UsageError as exc:
        args.parser.print_usage(sys.stderr)
        error(str(exc))
        return 2
    except ModelStoreError as exc:
        error(str(exc))
        return 1
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except Exception as exc:
        message = unexpected_error(exc)
        if message is None:
            raise  # a bug: its traceback is what to report
        error(message)
        return 1
    return code
