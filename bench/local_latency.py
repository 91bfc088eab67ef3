"""/predict latency through the local stack (gateway and RIE) against a direct handler call.

    .venv/bin/python bench/local_latency.py [--requests 1000] [--rounds 20] [--warmup 50]
        [--state-dir DIR] [--no-build] [--fresh-connections]

The local stack is what `make local` starts, in process, on free ports: a moto server
(S3, API Gateway), the API function as built for this Python run by the Lambda RIE (one
execution environment), and the local API Gateway in front of it with its key check and
usage plan (throttle and quota raised out of the way). The model is the stack's seed, the
iris best model, trained into STATE_DIR/seed (~10 s; pass --state-dir to reuse it).

Gateway path: POST /predict with the body of events/predict.json over one persistent HTTP
connection (keep-alive), x-api-key and Content-Type set; timed from the request to the
last byte of the answer. Direct path: in this process, ``predict_api.handler.handler``
called with events/predict.json and a fake Lambda context, with the function's own
environment (same registry in the same moto S3); timed around the call.

Both are warmed up first (the first request of each is timed apart: a cold start); then
rounds of N gateway requests and N direct calls, alternating which goes first, so machine
noise hits both alike. No target: the script reports what the local stack adds.
"""

from __future__ import annotations

import argparse
import copy
import gc
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import Timing, lambda_context, stdout_to_devnull  # noqa: E402
from devstack.stack import LocalStack, StackConfig  # noqa: E402
from tests.support.events import load_event  # noqa: E402

FUNCTION = "PredictApiFunction"
# The template's usage plan allows 50 rps (burst 100) and 10,000 requests a day per key.
UNTHROTTLED = {
    "ThrottleRateLimit": "10000",
    "ThrottleBurstLimit": "10000",
    "QuotaPerDay": "1000000",
}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _stack_log(source: str, line: str) -> None:
    # The stack's own progress (build, seed training); not the function or access logs.
    if source == "local":
        _say(f"  {line}")


class GatewayClient:
    """POST /predict to the local API over one keep-alive connection (or one per request)."""

    def __init__(self, api_url: str, api_key: str, body: str, *, fresh: bool = False) -> None:
        parts = urlsplit(api_url)
        self.host, self.port = parts.hostname or "", parts.port
        self.path = parts.path.rstrip("/") + "/predict"
        self.body = body.encode()
        self.headers = {"x-api-key": api_key, "Content-Type": "application/json"}
        self.fresh = fresh
        self.connection = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def predict(self) -> bytes:
        if self.fresh:
            self.connection.close()
            self.connection = self._connect()
        self.connection.request("POST", self.path, self.body, self.headers)
        response = self.connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"gateway answered {response.status}: {answer[:500]!r}")
        if response.will_close and not self.fresh:
            raise RuntimeError("the gateway closed the connection: no keep-alive")
        return answer

    def close(self) -> None:
        self.connection.close()


def _timed(call: Callable[[], object]) -> float:
    """Microseconds one call takes."""
    started = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - started) / 1e3


def _blocks(total: int, rounds: int) -> list[int]:
    """TOTAL requests split into ROUNDS blocks as even as they go."""
    base, extra = divmod(total, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


def _mean_ms(timing: Timing) -> float:
    return statistics.fmean(timing.samples_us) / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per path")
    parser.add_argument(
        "--rounds",
        type=int,
        default=20,
        help="blocks per path: each round is REQUESTS/ROUNDS gateway requests and as many "
        "direct calls, the first of the two alternating from round to round",
    )
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests per path first")
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="the stack's state (moto log, API key, the seed model it trains once); "
        "default: a fresh temporary directory",
    )
    parser.add_argument(
        "--no-build",
        dest="build",
        action="store_false",
        help="run the functions as .aws-sam/py3.X/build holds them (default: make build first, "
        "as make local does)",
    )
    parser.add_argument(
        "--fresh-connections",
        action="store_true",
        help="open a new HTTP connection for every gateway request instead of keeping one",
    )
    parser.add_argument(
        "--no-freeze",
        dest="freeze",
        action="store_false",
        help="leave the setup's objects (training, moto clients) to the garbage collector; "
        "by default they are frozen out of its way after the warm-up",
    )
    args = parser.parse_args()
    if args.requests < 1 or not 1 <= args.rounds <= args.requests:
        parser.error("need --requests >= 1 and 1 <= --rounds <= --requests")
    os.environ.pop("AWS_PROFILE", None)

    with tempfile.TemporaryDirectory(prefix="local-latency-") as tmp_name:
        state_dir = args.state_dir or Path(tmp_name)
        config = StackConfig(
            api_port=0,
            s3_port=0,
            state_dir=state_dir,
            max_environments=1,
            parameter_overrides=dict(UNTHROTTLED),
            seed_model=True,
            build=args.build,
        )
        stack = LocalStack(config, log=_stack_log)
        try:
            _say(f"starting the local stack (state in {state_dir}) ...")
            started = time.perf_counter()
            stack.start()
            _say(f"  ready in {time.perf_counter() - started:.1f} s at {stack.api_url}")
            _measure(stack, args)
        finally:
            stack.stop()


def _measure(stack: LocalStack, args: argparse.Namespace) -> None:
    event = load_event("predict.json")
    gateway = GatewayClient(
        stack.api_url, stack.api_key, event["body"], fresh=args.fresh_connections
    )
    try:
        _run(stack, gateway, event, args)
    finally:
        gateway.close()


def _run(
    stack: LocalStack, gateway: GatewayClient, event: dict[str, Any], args: argparse.Namespace
) -> None:
    spec = stack.pools[FUNCTION].spec
    # Cold: the pool starts the emulator; the runtime inits (imports) and loads the model.
    cold_gateway_us = _timed(gateway.predict)
    via_gateway = json.loads(gateway.predict())

    # The direct handler reads its settings at import: the function's own environment
    # first (registry bucket and prefix, moto's S3 endpoint, local credentials, log level).
    name = spec.function_name or spec.name
    os.environ.update(spec.environment)
    os.environ.update(
        AWS_LAMBDA_FUNCTION_NAME=name,
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(spec.memory_mb),
    )
    context = lambda_context(name, spec.memory_mb)
    answers: list[dict[str, Any]] = []

    def direct() -> None:
        answers[:] = [handler(copy.copy(event), context)]
        if answers[0]["statusCode"] != 200:
            raise RuntimeError(f"handler answered {answers[0]}")

    with stdout_to_devnull():
        started = time.perf_counter_ns()
        from predict_api.handler import app, handler

        import_us = (time.perf_counter_ns() - started) / 1e3
        cold_direct_us = _timed(direct)
        sys.stdout.flush()
    directly = json.loads(answers[0]["body"])
    for answer in (directly, via_gateway):
        answer.pop("request_id", None)
    if directly != via_gateway:
        raise SystemExit(f"the paths disagree: gateway {via_gateway!r}, direct {directly!r}")
    manifest = app.state.service.loader.current.manifest

    _say(f"warm-up ({args.warmup} per path) and {args.requests} timed requests per path ...")
    blocks = _blocks(args.requests, args.rounds)
    gateway_us: list[float] = []
    direct_us: list[float] = []
    with stdout_to_devnull():
        for _ in range(args.warmup):
            gateway.predict()
            direct()
        if args.freeze:
            gc.collect()
            gc.freeze()
        for index, size in enumerate(blocks):
            paths = [(gateway.predict, gateway_us), (direct, direct_us)]
            if index % 2:
                paths.reverse()
            for call, samples in paths:
                samples.extend(_timed(call) for _ in range(size))
        sys.stdout.flush()
    _print_results(
        args,
        blocks,
        model=f"{manifest.algorithm} (iris best, the stack's seed), version {manifest.version}",
        gateway=Timing(gateway_us),
        direct=Timing(direct_us),
        cold_gateway_ms=cold_gateway_us / 1e3,
        cold_direct_ms=cold_direct_us / 1e3,
        import_ms=import_us / 1e3,
        cold_starts=stack.pools[FUNCTION].cold_starts,
    )


def _print_results(
    args: argparse.Namespace,
    blocks: list[int],
    *,
    model: str,
    gateway: Timing,
    direct: Timing,
    cold_gateway_ms: float,
    cold_direct_ms: float,
    import_ms: float,
    cold_starts: int,
) -> None:
    sizes = sorted(set(blocks))
    block = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    print(
        f"model: {model}; {args.requests} requests per "
        f"path in {args.rounds} rounds of {block}, alternating which path goes first; "
        f"after {args.warmup} warm-up each"
    )
    connection = "new connection each" if args.fresh_connections else "keep-alive"
    rows = [
        (f"gateway + RIE, /predict over HTTP ({connection})", gateway),
        ("direct handler call, in process", direct),
    ]
    width = max(len(label) for label, _ in rows) + 2
    print(f"{'':{width}}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for label, timing in rows:
        p50, p99, mean = timing.p50 / 1e3, timing.p99 / 1e3, _mean_ms(timing)
        print(f"{label:{width}}{p50:9.2f}{p99:9.2f}{mean:9.2f}")
    print(
        f"\ncold first request, gateway + RIE:  {cold_gateway_ms:8.1f} ms  "
        "(emulator start, init, model load)"
    )
    print(
        f"cold first request, direct:         {cold_direct_ms:8.1f} ms  "
        f"(model load, scikit-learn already imported; the handler's import: {import_ms:.0f} ms)"
    )
    added = (gateway.p50 - direct.p50) / 1e3
    print(f"\nadded by gateway + RIE, p50:        {added:8.2f} ms")
    print(f"gateway + RIE / direct, p50:        {gateway.p50 / direct.p50:8.2f} x   (no target)")
    if cold_starts != 1:
        print(f"note: the function had {cold_starts} cold starts (one expected)")


if __name__ == "__main__":
    main()
