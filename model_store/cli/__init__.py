"""The ``model-store`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from model_store.cli import keys_cmd, registry_cmds, score_cmd, signing_cmds, train_cmd
from model_store.cli.output import UsageError, error
from model_store.exceptions import ModelStoreError


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    registry_cmds.add_registry_option(common)
    parser = argparse.ArgumentParser(
        prog="model-store",
        description="Train, publish, version and promote scikit-learn models.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train_cmd.add_parser(commands, common)
    registry_cmds.add_parsers(commands, common)
    signing_cmds.add_parsers(commands, common)
    score_cmd.add_parser(commands, common)
    keys_cmd.add_parser(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.handler(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        error(str(exc))
        return 2
    except ModelStoreError as exc:
        error(str(exc))
        return 1
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    return code
