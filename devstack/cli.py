"""`python -m devstack local|invoke`: what `make local` and `make invoke` run."""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from devstack import runtime
from devstack.rie import RieProcess
from devstack.stack import (
    ROOT,
    LocalStack,
    StackConfig,
    StackError,
    exposure_warning,
    function_environment,
    lambda_spec,
    load_env_file,
    sandbox_base_env,
)
from devstack.template import Template, TemplateError

_COLORS = ("36", "35", "33", "32", "34", "31")


class Printer:
    """Log lines of many sources on one terminal, each prefixed with its source's name."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self.color = stream.isatty() and not os.environ.get("NO_COLOR")
        self._lock = threading.Lock()
        self._colors: dict[str, str] = {}

    def __call__(self, source: str, line: str) -> None:
        name = source.split("#", 1)[0]
        color = self._colors.setdefault(name, _COLORS[len(self._colors) % len(_COLORS)])
        prefix = f"{source:<23}|"
        if self.color:
            prefix = f"\033[{color}m{prefix}\033[0m"
        with self._lock:
            print(f"{prefix} {line}", file=self.stream, flush=True)


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--parameter-overrides expects NAME=VALUE, got {pair!r}")
        overrides[name] = value
    return overrides


# Shortcuts for template parameters: option destination, parameter.
PARAMETER_SHORTCUTS = {"shard_above": "ShardAboveBytes", "shard_rows": "ShardRows"}


def parameter_overrides(args: argparse.Namespace) -> dict[str, str]:
    """--parameter-overrides, then the shortcuts given (which win)."""
    overrides = parse_overrides(args.parameter_overrides)
    for option, parameter in PARAMETER_SHORTCUTS.items():
        value = getattr(args, option, None)
        if value is not None:
            overrides[parameter] = str(value)
    return overrides


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def banner(stack: LocalStack, seconds: float) -> str:
    assert stack.template is not None
    endpoint = stack.s3_endpoint
    trigger = next(iter(stack.template.s3_triggers()), None)
    data_bucket = trigger.bucket if trigger else next(iter(stack.buckets.values()), "")
    prefix = trigger.prefix if trigger else ""
    environment = stack.model_environment() or {}
    registry = f"s3://{environment.get('MODEL_BUCKET', '')}/{environment.get('MODEL_PREFIX', '')}"
    aws_env = "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=" + (
        stack.config.region
    )
    example = example_record(stack)
    record = json.dumps(example)
    csv_header = ",".join(example)
    csv_row = ",".join(str(v) for v in example.values())
    url = stack.api_url
    key = stack.api_key
    lines = [
        "",
        f"ready in {seconds:.1f} s ("
        + ", ".join(f"{step} {took:.1f} s" for step, took in stack.timings.items())
        + ")",
        "",
        f"  API            {url}   (routes: "
        + ", ".join(f"{r.method} {r.path}" for g in stack.gateways for r in g.api.routes)
        + ")",
        f"  API key        {key}",
        f"  S3 endpoint    {endpoint}",
        "  buckets        "
        + ", ".join(f"{name} ({logical})" for logical, name in stack.buckets.items()),
        f"  registry       {registry}",
        f"  runtime        {_runtime_note(environment.get('SERVING_RUNTIME', ''))}",
        f"  signatures     {_signatures_note(stack.signing_key)}",
        *(
            [f"  sharding       {_sharding_note(stack)}"]
            if "ShardAboveBytes" in stack.template.parameters
            else []
        ),
        f"  state          {stack.config.state}",
        *(["", warning] if (warning := exposure_warning(stack.config.s3_host)) else []),
        "",
        "Try, in another terminal:",
        "",
        f"  curl -s {url}/health",
        f"  curl -s -H 'x-api-key: {key}' -H 'Content-Type: application/json' \\",
        f"       -d '{record}' {url}/predict",
        "",
        f"  # a .csv or .csv.gz (any case) under {prefix} is scored; anything else there",
        "  # gets a rejected report under reports/ saying so",
        f"  printf '{csv_header}\\n{csv_row}\\n' > /tmp/sample.csv",
        f"  {aws_env} \\",
        f"    aws --endpoint-url {endpoint} s3 cp /tmp/sample.csv s3://{data_bucket}/{prefix}sample.csv",
        f"  {aws_env} \\",
        f"    aws --endpoint-url {endpoint} s3 ls --recursive s3://{data_bucket}/",
        "",
        "  # the project's CLI against the local stack:",
        f"  export AWS_ENDPOINT_URL={endpoint} {aws_env}",
        *([f"  export MODEL_STORE_SIGN_KEY={stack.signing_key}"] if stack.signing_key else []),
        f"  .venv/bin/model-store list --registry {registry}",
        f"  .venv/bin/model-store keys create my-client --stack {stack.config.stack_name}",
        "",
        "Function logs follow. Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def _sharding_note(stack: LocalStack) -> str:
    assert stack.template is not None
    above = stack.template.parameters["ShardAboveBytes"]
    machines = ", ".join(arn.rpartition(":")[2] for arn in stack.state_machines.values())
    return (
        f"a .csv over {above} bytes runs through {machines or 'the state machine'} "
        "(ARGS=--shard-above BYTES to shard small files)"
    )


def _signatures_note(key_arn: str | None) -> str:
    if key_arn is None:
        return "not required (ARGS=--require-signatures to require them)"
    return f"required, by the KMS key {key_arn} (in moto)"


def _runtime_note(runtime: str) -> str:
    other = "sklearn" if runtime == "onnx" else "onnx"
    return (
        f'{runtime or "the code default"} (ServingRuntime; ARGS="--parameter-overrides '
        f'ServingRuntime={other}" for the other)'
    )


def example_record(stack: LocalStack) -> dict[str, float]:
    """A record of the served model's features, from its manifest."""
    from model_store.registry import Registry, S3Store
    from model_store.schema import example_record as from_manifest

    environment = stack.model_environment()
    if environment is None:
        return {}
    registry = Registry(
        S3Store(
            stack.client("s3"), environment["MODEL_BUCKET"], environment.get("MODEL_PREFIX", "")
        )
    )
    name = environment.get("MODEL_NAME") or "iris"
    reference = (
        name
        + "@"
        + (environment.get("MODEL_VERSION") or environment.get("MODEL_ALIAS") or "production")
    )
    manifest = registry.read_manifest(*registry.resolve_ref(reference))
    return from_manifest(manifest)


def local(args: argparse.Namespace) -> int:
    printer = Printer()
    config = StackConfig(
        host=args.host,
        api_port=args.port,
        s3_host=args.s3_host,
        s3_port=args.s3_port,
        parameter_overrides=parameter_overrides(args),
        env_file=Path(args.env_vars) if args.env_vars else None,
        max_environments=args.max_environments,
        require_signatures=args.require_signatures,
        verbose=args.verbose,
        state_dir=Path(args.state_dir) if args.state_dir else None,
    )
    stack = LocalStack(config, log=printer)
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    started = time.perf_counter()
    try:
        stack.start()
    except (StackError, TemplateError) as exc:
        print(f"make local: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopped before ready", file=sys.stderr)
        return 130
    try:
        print(banner(stack, time.perf_counter() - started), flush=True)
        signal.signal(signal.SIGINT, stop)
        # Python runs signal handlers in the main thread only, and a signal the kernel
        # delivers to another thread does not wake a wait without a timeout: a Ctrl-C
        # could go unanswered. A short timeout lets the main thread run the handler.
        while not stopping.wait(0.25):
            pass
    finally:
        print("\nstopping: gateway, functions, moto ...", flush=True)
        _watch_the_stop(STOP_LIMIT_SECONDS)
        stack.stop()
        print("stopped", flush=True)
    return 0


# Every part of a stop is bounded (a few seconds each); past this something hangs.
STOP_LIMIT_SECONDS = 45.0


def _watch_the_stop(limit: float) -> None:
    """Past LIMIT, print what every thread is doing and end the process: Ctrl-C must end
    the stack, and the stacks say where it hung. `kill -USR1 PID` prints them any time."""

    def give_up() -> None:
        print(f"make local: stopping took over {limit:.0f} s; threads:", file=sys.stderr)
        faulthandler.dump_traceback(all_threads=True)
        sys.stderr.flush()
        os._exit(1)

    timer = threading.Timer(limit, give_up)
    timer.daemon = True
    timer.start()


def invoke(args: argparse.Namespace) -> int:
    """Run FUNCTION once under the RIE with EVENT, like `sam local invoke`."""
    config = StackConfig(
        parameter_overrides=parameter_overrides(args),
        env_file=Path(args.env_vars) if args.env_vars else None,
        state_dir=Path(args.state_dir) if args.state_dir else None,
    )
    try:
        event = json.loads(Path(args.event).read_text())
    except (OSError, ValueError) as exc:
        print(f"make invoke: cannot read event {args.event}: {exc}", file=sys.stderr)
        return 2
    build_dir = runtime.build_dir(config.python_version, config.root)
    if not args.skip_build:
        try:
            build_dir = runtime.build(config.python_version, config.root, quiet=True)
        except runtime.BuildError as exc:
            print(f"make invoke: {exc}", file=sys.stderr)
            return 2
    try:
        template = Template(
            build_dir / "template.yaml",
            stack_name=config.stack_name,
            region=config.region,
            parameter_overrides=config.parameter_overrides,
        )
        functions = template.functions()
    except TemplateError as exc:
        print(f"make invoke: {exc}", file=sys.stderr)
        return 2
    function = functions.get(args.function)
    if function is None:
        print(
            f"make invoke: no function {args.function!r}; the template has {', '.join(functions)}",
            file=sys.stderr,
        )
        return 2
    endpoint = running_stack_endpoint(config.state)
    if endpoint is None and args.s3_endpoint is None:
        print(
            "make invoke: no `make local` running; S3 calls go where events/env.json points",
            file=sys.stderr,
        )
    environment = function_environment(
        function,
        env_file=load_env_file(config.env_file),
        overrides={},
        s3_endpoint=args.s3_endpoint or endpoint,
        region=config.region,
    )
    spec = lambda_spec(
        function, environment, runtime.runtime_dir(config.python_version, config.root)
    )
    with RieProcess(spec, base_env=sandbox_base_env()) as rie:
        result = rie.invoke(event)
    for line in result.logs:
        if "(rapid)" not in line and not line.startswith("REPORT"):
            print(line, file=sys.stderr)
    print(json.dumps(result.payload, indent=2))
    if result.report is not None:
        print(result.report.cloudwatch_line(), file=sys.stderr)
    # As `sam local invoke`: a handler error is a result (errorType above), not a failure.
    return 0


def running_stack_endpoint(state_dir: Path) -> str | None:
    """The S3 endpoint of the `make local` running on this checkout, if any."""
    try:
        state = json.loads((state_dir / "stack.json").read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    endpoint = state.get("s3_endpoint")
    return str(endpoint) if endpoint else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    local_parser = commands.add_parser("local", help="run the whole system on this machine")
    local_parser.add_argument(
        "--host", default="127.0.0.1", help="the API's address (default 127.0.0.1)"
    )
    local_parser.add_argument(
        "--s3-host",
        default="127.0.0.1",
        help="moto's address (default 127.0.0.1, whatever --host is). moto has no auth: "
        "anyone who reaches it reads the API keys and writes the model bucket",
    )
    local_parser.add_argument("--port", type=int, default=3000, help="API port (default 3000)")
    local_parser.add_argument("--s3-port", type=int, default=4567, help="moto port (default 4567)")
    local_parser.add_argument(
        "--max-environments",
        type=_positive,
        default=4,
        help="execution environments per function (default 4): how many invocations of one "
        "function run at once, a Distributed Map's shards included; more queue",
    )
    local_parser.add_argument(
        "--require-signatures",
        action="store_true",
        help="make a signing key in moto's KMS, sign the seed model with it and have the "
        "functions refuse models it did not sign (ModelSigningKeyArn)",
    )
    local_parser.add_argument("--verbose", action="store_true", help="show the emulator's own log")
    local_parser.set_defaults(handler=local)

    invoke_parser = commands.add_parser(
        "invoke", help="invoke one function once, like sam local invoke"
    )
    invoke_parser.add_argument(
        "function", metavar="FUNCTION", help="logical id, e.g. PredictApiFunction"
    )
    invoke_parser.add_argument("--event", "-e", required=True, help="event JSON file")
    invoke_parser.add_argument(
        "--s3-endpoint", help="S3 endpoint (default: the running make local)"
    )
    invoke_parser.add_argument(
        "--skip-build", action="store_true", help="use the last build as it is (faster)"
    )
    invoke_parser.set_defaults(handler=invoke)

    for sub in (local_parser, invoke_parser):
        sub.add_argument("--state-dir", help="local state (default: .local in the checkout)")
        sub.add_argument(
            "--env-vars", default=str(ROOT / "events" / "env.json"), help="env.json overrides"
        )
        sub.add_argument(
            "--parameter-overrides",
            nargs="*",
            default=[],
            metavar="NAME=VALUE",
            help="template parameters",
        )
        sub.add_argument(
            "--shard-above",
            type=_positive,
            metavar="BYTES",
            help="ShardAboveBytes: a .csv over this size is scored in shards by the state "
            "machine (e.g. 1000, so a small demo file takes that path)",
        )
        sub.add_argument(
            "--shard-rows",
            type=_positive,
            metavar="LINES",
            help="ShardRows: lines per shard (e.g. 50, for several shards of a small file)",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    code: int = handler(args)
    return code
