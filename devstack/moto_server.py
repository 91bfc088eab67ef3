"""The moto server `make local` runs: `python -m moto.server`, with Step Functions.

`python -m devstack.moto_server [moto.server's options]` turns moto's Step Functions
interpreter on, its Lambda tasks calling the Lambda Invoke endpoint whose URL is in
LAMBDA_ENDPOINT_VARIABLE (devstack.sfn_interpreter says what else changes), then runs
moto's own main with the same options. A moto that lacks the internals this relies on
stops here, at startup, naming what is missing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

LAMBDA_ENDPOINT_VARIABLE = "DEVSTACK_LAMBDA_ENDPOINT"


def own_endpoint(argv: Sequence[str]) -> str:
    """The URL this server answers on, from moto.server's own -H/-p options."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    known, _ = parser.parse_known_args(argv)
    # A wildcard address is reached on loopback.
    wildcard = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
    host: str = wildcard.get(known.host, known.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{known.port}"


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    lambda_endpoint = os.environ.get(LAMBDA_ENDPOINT_VARIABLE)
    if not lambda_endpoint:
        raise SystemExit(f"devstack.moto_server: set {LAMBDA_ENDPOINT_VARIABLE} (a Lambda URL)")
    from devstack.sfn_interpreter import MotoInternalsError, enable

    try:
        enable(lambda_endpoint, own_endpoint(arguments))
    except MotoInternalsError as exc:
        raise SystemExit(
            f"devstack.moto_server: {exc}. Step Functions cannot run locally with this moto; "
            "pyproject.toml pins the version devstack was written for."
        ) from None
    from moto.server import main as moto_main

    moto_main(arguments)


if __name__ == "__main__":
    main()
