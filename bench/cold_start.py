"""Cold start of the built API function under the Lambda RIE against the floor, in one run.

    .venv/bin/python bench/cold_start.py [--runs 5] [--warmup 1] [--profile-imports]

First the dependencies layer of the target runtime (`make build`, Python 3.13) is measured
unzipped. Then, for each Python that can run a build here (this machine's, with the
local-Python build variant; and the runtime's own CPython 3.13 with the target build, when
this machine has it), ``PredictApiFunction`` as built is run by the Lambda RIE in isolated
mode (-I -S): only its code, the built layers and the runtime's own pieces (awslambdaric,
and boto3 where the layer leaves it to the runtime) are on the path. Each run is a fresh
emulator with an empty TMPDIR (no model cache) and the model (iris best) in a moto server
bucket; its first /predict (events/predict.json) is timed from the request to the answer:
process start, init (imports), model download, verification and unpickling, prediction.

The floor, interleaved with it: a fresh process of the same interpreter, -I -S with the
same built layers on the path, that imports joblib and sklearn, ``joblib.load``s the same
model.joblib from a local file and predicts one row, timed from spawn to exit.

Targets (issue 6): layer <= 200 MiB unzipped; cold first prediction <= 1.5x the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.rie import FunctionSpec, RieProcess  # noqa: E402
from devstack.runtime import (  # noqa: E402
    base_python,
    build,
    local_python_version,
    runtime_dir,
)
from layers.build_layer import MIB, runtime_python, size_of  # noqa: E402

if TYPE_CHECKING:
    from model_store import Artifact

TARGET_PYTHON = "3.13"
LAYER_TARGET_MIB = 200.0
RATIO_TARGET = 1.5
MODEL_BUCKET = "bench-models"
FUNCTION = "PredictApiFunction"
HANDLER = "predict_api.handler.handler"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
# The loader's log line, as the function writes it (model_store.loader).
_MODEL_LOADED = re.compile(r"loaded model \S+ version \S+ \(.*?\) in (?P<seconds>[\d.]+)s")
# The emulator's end of the invoke phase. Its REPORT Duration counts the init in (the
# runtime starts on the first invoke here), so the invoke phase is read from this line.
_INVOKE_DONE = re.compile(r"INVOKE RTDONE\(.*?duration: (?P<ms>[\d.]+)ms\)")

# The floor: nothing but what the model needs, from the same built layers.
FLOOR = """\
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
import joblib, sklearn
model = joblib.load(sys.argv[2])
print(model.predict([json.loads(sys.argv[3])])[0])
"""

# --profile-imports: the function's cold path without the emulator, under -X importtime.
PROFILE_FUNCTION = """\
import json, sys, time
from types import SimpleNamespace
sys.path[:0] = json.loads(sys.argv[1])
started = time.perf_counter()
import awslambdaric.bootstrap
import predict_api.handler as module
imported = time.perf_counter()
context = SimpleNamespace(
    function_name="PredictApiFunction", function_version="$LATEST",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:bench",
    memory_limit_in_mb=512, aws_request_id="bench", log_group_name="g", log_stream_name="s",
    get_remaining_time_in_millis=lambda: 30_000,
)
response = module.handler(json.loads(sys.argv[2]), context)
done = time.perf_counter()
assert response["statusCode"] == 200, response
print("PHASES", json.dumps({"import_s": imported - started, "first_invoke_s": done - imported}))
"""


@dataclass(frozen=True)
class Variant:
    """One interpreter and the build it can run."""

    label: str
    python: str
    version: str  # the interpreter's full version, e.g. 3.13.0
    build: Path
    runtime_dirs: list[Path]

    @property
    def layers(self) -> list[Path]:
        return [
            self.build / "DependenciesLayer" / "python",
            self.build / "ModelStoreLayer" / "python",
        ]

    def spec(self, environment: dict[str, str]) -> FunctionSpec:
        return FunctionSpec(
            name=FUNCTION,
            handler=HANDLER,
            code_dir=self.build / FUNCTION,
            layer_dirs=self.layers,
            runtime_dirs=self.runtime_dirs,
            python=self.python,
            isolated=True,
            environment=environment,
        )


@dataclass(frozen=True)
class ColdRun:
    seconds: float  # the first invoke, request to answer: what a caller waits
    init_ms: float | None  # INIT REPORT: runtime start and the handler's imports
    invoke_ms: float | None  # INVOKE RTDONE: the first invocation itself
    duration_ms: float | None  # REPORT Duration (init included by this emulator)
    model_load_ms: float | None  # the loader's own timing: S3, verification, unpickling
    prediction: str


@dataclass(frozen=True)
class Result:
    variant: Variant
    cold: list[ColdRun]
    floor: list[float]


def _say(message: str) -> None:
    """Progress goes to stderr; stdout carries only the results."""
    print(message, file=sys.stderr, flush=True)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _python_version(python: str) -> str:
    done = subprocess.run(
        [python, "-I", "-S", "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _variants(target_build: Path) -> list[Variant]:
    """This machine's Python with its build variant; the runtime's CPython with the target's."""
    from bench._support import lambda_sdk_dir, stdout_to_stderr

    def runtime_dirs(build_dir: Path, version: str) -> list[Path]:
        dirs = [runtime_dir(version)]
        if not (build_dir / "DependenciesLayer" / "python" / "boto3").is_dir():
            dirs.append(lambda_sdk_dir(version))  # Lambda's runtime provides boto3
        return dirs

    local = local_python_version()
    variants: list[Variant] = []
    with stdout_to_stderr():
        if local != TARGET_PYTHON:
            _say(f"make build PYTHON_VERSION={local} (the local-Python variant) ...")
            local_build = build(local)
            python = base_python()
            variants.append(
                Variant(
                    f"local build, Python {local}",
                    python,
                    _python_version(python),
                    local_build,
                    runtime_dirs(local_build, local),
                )
            )
        python_target = base_python() if local == TARGET_PYTHON else runtime_python(TARGET_PYTHON)
        if python_target is None:
            _say(f"no CPython {TARGET_PYTHON} on this machine: the target build is not run")
        else:
            variants.append(
                Variant(
                    f"target build, Python {TARGET_PYTHON}",
                    python_target,
                    _python_version(python_target),
                    target_build,
                    runtime_dirs(target_build, TARGET_PYTHON),
                )
            )
    return variants


def _model_load_ms(logs: list[str]) -> float | None:
    for line in logs:
        match = _MODEL_LOADED.search(line)
        if match is not None:
            return float(match["seconds"]) * 1e3
    return None


def _invoke_ms(logs: list[str]) -> float | None:
    for line in logs:
        match = _INVOKE_DONE.search(line)
        if match is not None:
            return float(match["ms"])
    return None


def _cold_run(variant: Variant, environment: dict[str, str], event: dict[str, Any]) -> ColdRun:
    """A fresh emulator, an empty /tmp, one invocation: Lambda's cold start."""
    with tempfile.TemporaryDirectory(prefix="cold-start-tmp-") as tmp:
        spec = variant.spec({**environment, "TMPDIR": tmp})
        with RieProcess(spec, base_env={**CREDENTIALS, "PATH": os.environ.get("PATH", "")}) as rie:
            invocation = rie.invoke(event, timeout=120)
    payload = invocation.payload
    if not isinstance(payload, dict) or payload.get("statusCode") != 200:
        tail = "\n".join(invocation.logs[-30:])
        raise SystemExit(f"{variant.label}: /predict failed: {payload}\n{tail}")
    report = invocation.report
    return ColdRun(
        seconds=invocation.seconds,
        init_ms=report.init_ms if report is not None else None,
        invoke_ms=_invoke_ms(invocation.logs),
        duration_ms=report.duration_ms if report is not None else None,
        model_load_ms=_model_load_ms(invocation.logs),
        prediction=str(json.loads(payload["body"])["prediction"]),
    )


def _floor_command(
    variant: Variant, model: Path, row: list[float], flags: tuple[str, ...] = ()
) -> list[str]:
    layers = json.dumps(list(map(str, variant.layers)))
    return [variant.python, "-I", "-S", *flags, "-c", FLOOR, layers, str(model), json.dumps(row)]


def _floor_run(variant: Variant, model: Path, row: list[float]) -> tuple[float, str]:
    """A bare process of the same interpreter on the same layers: spawn to exit."""
    started = time.perf_counter()
    done = subprocess.run(
        _floor_command(variant, model, row), capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{variant.label}: floor failed ({done.returncode}):\n{done.stderr}")
    return seconds, done.stdout.strip()


def _measure(variant: Variant, artifact: Artifact, model: Path, runs: int, warmup: int) -> Result:
    import boto3

    from bench._support import moto_server
    from devstack.rie import free_port
    from model_store import open_registry
    from tests.events import load_event

    event = load_event("predict.json")
    record = json.loads(event["body"])
    row = [float(record[name]) for name in artifact.manifest.feature_names]
    cold: list[ColdRun] = []
    floor: list[float] = []
    with moto_server(free_port()) as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=MODEL_BUCKET)
        registry = open_registry(f"s3://{MODEL_BUCKET}", s3_client=client)
        registry.publish(artifact, name="iris", version="1")
        registry.promote("iris", "1")
        environment = {
            "MODEL_BUCKET": MODEL_BUCKET,
            "MODEL_NAME": "iris",
            "AWS_ENDPOINT_URL_S3": endpoint,
        }
        for i in range(warmup + runs):
            # Turn by turn, in alternating order, so machine noise hits both alike.
            if i % 2 == 0:
                run = _cold_run(variant, environment, event)
                floor_seconds, floor_prediction = _floor_run(variant, model, row)
            else:
                floor_seconds, floor_prediction = _floor_run(variant, model, row)
                run = _cold_run(variant, environment, event)
            if run.prediction != floor_prediction:
                raise SystemExit(
                    f"{variant.label}: the function said {run.prediction!r}, "
                    f"the floor {floor_prediction!r}"
                )
            kind = "warm-up" if i < warmup else f"run {i - warmup + 1}/{runs}"
            _say(
                f"  {kind}: cold first /predict {run.seconds:.3f} s (init {_ms(run.init_ms)} ms, "
                f"invoke {_ms(run.invoke_ms)} ms, model load {_ms(run.model_load_ms)} ms), "
                f"floor {floor_seconds:.3f} s"
            )
            if i >= warmup:
                cold.append(run)
                floor.append(floor_seconds)
    return Result(variant, cold, floor)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _s(ms: float | None) -> float | None:
    return None if ms is None else ms / 1e3


def _print_results(
    layer_mib: float, algorithm: str, results: list[Result], runs: int, warmup: int
) -> None:
    layer_ok = layer_mib <= LAYER_TARGET_MIB
    print(f"dependencies layer, target runtime (Python {TARGET_PYTHON}, .aws-sam/build), unzipped:")
    print(f"  {layer_mib:.1f} MiB   target <= {LAYER_TARGET_MIB:.0f} MiB   {_verdict(layer_ok)}")
    print(
        f"\nmodel: {algorithm} (iris best); S3: moto server over HTTP in its own process; "
        f"{runs} runs after {warmup} warm-up, each a fresh process; cold and floor turn by turn"
    )
    for result in results:
        variant = result.variant
        cold = [run.seconds for run in result.cold]
        print(f"\n{variant.label}: CPython {variant.version} ({variant.python})")
        print(f"  function and layers: {variant.build.relative_to(ROOT)}")
        print(f"  {'':52}{'median s':>9}{'min s':>8}")
        rows: list[tuple[str, list[float | None]]] = [
            ("cold first /predict under the RIE (wall)", list(cold)),
            ("  init (INIT REPORT)", [_s(run.init_ms) for run in result.cold]),
            ("  first invoke (INVOKE RTDONE)", [_s(run.invoke_ms) for run in result.cold]),
            (
                "    model load (S3, verify, unpickle)",
                [_s(run.model_load_ms) for run in result.cold],
            ),
            (
                "  REPORT Duration (this RIE counts init in)",
                [_s(r.duration_ms) for r in result.cold],
            ),
            ("floor: spawn, import, joblib.load, predict, exit", list(result.floor)),
        ]
        for label, samples in rows:
            known = [v for v in samples if v is not None]
            if known:
                print(f"  {label:52}{statistics.median(known):9.3f}{min(known):8.3f}")
            else:
                print(f"  {label:52}{'n/a':>9}{'n/a':>8}")
        ratio = statistics.median(cold) / statistics.median(result.floor)
        ratio_min = min(cold) / min(result.floor)
        print(f"  cold / floor, min:     {ratio_min:5.2f} x   (no target)")
        print(
            f"  cold / floor, median:  {ratio:5.2f} x   target <= {RATIO_TARGET}x   "
            f"{_verdict(ratio <= RATIO_TARGET)}"
        )


# --- --profile-imports ----------------------------------------------------------------


def _import_times(stderr: str) -> dict[str, float]:
    """Self time (us) of each module in -X importtime's report."""
    times: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        times[name.strip()] = float(self_us)
    return times


def _by_package(times: dict[str, float]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for name, us in times.items():
        totals[name.split(".")[0]] += us
    return dict(totals)


def _profile_imports(variant: Variant, artifact: Artifact, model: Path) -> None:
    """Where the function's cold path goes beyond the floor's, by imported module.

    The function's cold path runs in process (no emulator: awslambdaric and the handler
    imported, then one /predict with an empty model cache), under -X importtime, since -I
    makes the interpreter ignore PYTHONPROFILEIMPORTTIME; the floor runs as measured.
    """
    import boto3

    from bench._support import moto_server
    from devstack.rie import free_port
    from model_store import open_registry
    from tests.events import load_event

    event = load_event("predict.json")
    record = json.loads(event["body"])
    row = [float(record[name]) for name in artifact.manifest.feature_names]
    paths = [str(variant.build / FUNCTION), *map(str, variant.layers)]
    paths += map(str, variant.runtime_dirs)
    command = [variant.python, "-I", "-S", "-X", "importtime", "-c", PROFILE_FUNCTION]
    command += [json.dumps(paths), json.dumps(event)]
    with moto_server(free_port()) as endpoint, tempfile.TemporaryDirectory() as tmp:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=MODEL_BUCKET)
        registry = open_registry(f"s3://{MODEL_BUCKET}", s3_client=client)
        registry.publish(artifact, name="iris", version="1")
        registry.promote("iris", "1")
        env = {
            **CREDENTIALS,
            "PATH": os.environ.get("PATH", ""),
            "MODEL_BUCKET": MODEL_BUCKET,
            "MODEL_NAME": "iris",
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
            "TMPDIR": tmp,
        }
        function = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if function.returncode != 0:
        raise SystemExit(f"profile of {variant.label} failed:\n{function.stderr[-3000:]}")
    floor = subprocess.run(
        _floor_command(variant, model, row, ("-X", "importtime")),
        capture_output=True,
        text=True,
        check=True,
    )
    phases: dict[str, float] = {}
    for line in function.stdout.splitlines():
        if line.startswith("PHASES "):
            phases = json.loads(line.removeprefix("PHASES "))
    load_ms = _model_load_ms(function.stdout.splitlines())
    fn_times, floor_times = _import_times(function.stderr), _import_times(floor.stderr)
    only = {name: us for name, us in fn_times.items() if name not in floor_times}
    both_fn = sum(us for name, us in fn_times.items() if name in floor_times)
    both_floor = sum(us for name, us in floor_times.items() if name in fn_times)
    lines = [
        f"\n--- {variant.label}: the function's cold path in process, -X importtime ---",
        f"  import awslambdaric and the handler: {phases.get('import_s', float('nan')):.3f} s; "
        f"first /predict: {phases.get('first_invoke_s', float('nan')):.3f} s "
        f"(model load {_ms(load_ms)} ms of it)",
        f"  modules imported: function {len(fn_times)} ({sum(fn_times.values()) / 1e3:.0f} ms "
        f"self), floor {len(floor_times)} ({sum(floor_times.values()) / 1e3:.0f} ms self)",
        f"  modules both import: {both_fn / 1e3:.0f} ms self in the function, "
        f"{both_floor / 1e3:.0f} ms in the floor",
        f"  modules only the function imports: {len(only)}, {sum(only.values()) / 1e3:.0f} ms "
        "self; by top-level package:",
    ]
    for name, us in sorted(_by_package(only).items(), key=lambda item: -item[1])[:15]:
        lines.append(f"    {name:28}{us / 1e3:8.1f} ms")
    _say("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed cold start + floor pairs first, so both meet a warm page cache",
    )
    parser.add_argument(
        "--profile-imports",
        action="store_true",
        help="afterwards, run the function's cold path and the floor in process under "
        "-X importtime and print, to stderr, the packages whose imports the function adds",
    )
    args = parser.parse_args()
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(CREDENTIALS)

    from bench._support import iris_best_artifact, stdout_to_stderr

    _say(f"make build PYTHON_VERSION={TARGET_PYTHON} (the target runtime) ...")
    with stdout_to_stderr():
        target_build = build(TARGET_PYTHON)
    layer_mib = size_of(target_build / "DependenciesLayer") / MIB
    variants = _variants(target_build)

    _say("training the iris best model (six-algorithm grid search) ...")
    artifact = iris_best_artifact()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp_name:
        model = artifact.write(Path(tmp_name) / "artifact") / "model.joblib"
        for variant in variants:
            _say(f"{variant.label} ({variant.python}): {args.runs} cold starts and floors ...")
            results.append(_measure(variant, artifact, model, args.runs, args.warmup))
        _print_results(layer_mib, artifact.manifest.algorithm, results, args.runs, args.warmup)
        sys.stdout.flush()
        if args.profile_imports:
            for variant in variants:
                _profile_imports(variant, artifact, model)


if __name__ == "__main__":
    main()
