"""Cold and warm /predict under the Lambda RIE: the project (onnx, sklearn) against a
seeds-style baseline handler, side by side in one run.

    .venv/bin/python bench/cold_start.py [--runs 5] [--warmup 1] [--warm 200] [--profile-imports]

Functions, each as built (`make build`), run by the Lambda RIE in isolated mode (-I -S):
only the function's code, its layers and the runtime's own pieces (awslambdaric, and boto3
where the layer leaves it to the runtime) are on the path:

- trivial: a handler that does nothing (the emulator's own floor);
- baseline: bench/handlers/seeds_style.py on the sklearn dependency layer: boto3 client at
  import, joblib model downloaded on the first call, predict then predict_proba, one JSON;
- project, sklearn: PredictApiFunction on the sklearn layer, SERVING_RUNTIME=sklearn;
- project, onnx: PredictApiFunction on the onnx layer, SERVING_RUNTIME=onnx.

Each cold run is a fresh emulator with an empty TMPDIR (no model cache), the model (the
iris best) in a moto server bucket; its first /predict (events/predict.json) is timed from
the request to the answer: process start, init, model download and load, prediction. The
same environment then answers --warm more requests, timed the same way. Functions take
turns in rotating order, so machine noise hits them alike. Runs for the target runtime's
CPython 3.13 (when this machine has it) and for this machine's Python (its build variant).

Targets (issue 12): the onnx build's cold first /predict <= 0.5x the baseline's, its warm
p50 <= 0.5x the baseline's; the onnx dependency layer <= 110 MiB unzipped, the sklearn one
no bigger than before (177.2 MiB).
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
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.rie import FunctionSpec, RieProcess  # noqa: E402
from devstack.runtime import base_python, build, local_python_version, runtime_dir  # noqa: E402
from layers.build_layer import MIB, runtime_python, size_of  # noqa: E402

if TYPE_CHECKING:
    from model_store import Artifact

TARGET_PYTHON = "3.13"
ONNX_LAYER_TARGET_MIB = 110.0
SKLEARN_LAYER_BEFORE_MIB = 177.2
RATIO_TARGET = 0.5
MODEL_BUCKET = "bench-models"
HANDLERS = ROOT / "bench" / "handlers"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
_MODEL_LOADED = re.compile(r"loaded model \S+ version \S+ \(.*?\) in (?P<seconds>[\d.]+)s")
KINDS = ("trivial", "baseline", "project, sklearn", "project, onnx")


@dataclass(frozen=True)
class Build:
    """One interpreter and the build it runs."""

    label: str
    python: str
    version: str
    root: Path
    runtime_dirs: list[Path]

    def spec(self, kind: str, environment: dict[str, str]) -> FunctionSpec:
        layers = {
            "sklearn": self.root / "SklearnDependenciesLayer" / "python",
            "onnx": self.root / "OnnxDependenciesLayer" / "python",
            "model_store": self.root / "ModelStoreLayer" / "python",
        }
        if kind == "trivial":
            code, handler, layer_dirs = HANDLERS, "trivial.handler", []
        elif kind == "baseline":
            code, handler, layer_dirs = HANDLERS, "seeds_style.handler", [layers["sklearn"]]
        else:
            runtime = kind.removeprefix("project, ")
            code, handler = self.root / "PredictApiFunction", "predict_api.handler.handler"
            layer_dirs = [layers[runtime], layers["model_store"]]
            environment = {**environment, "SERVING_RUNTIME": runtime}
        return FunctionSpec(
            name=kind,
            handler=handler,
            code_dir=code,
            layer_dirs=layer_dirs,
            runtime_dirs=self.runtime_dirs,
            python=self.python,
            isolated=True,
            environment=environment,
            memory_mb=1024,
        )


@dataclass
class Samples:
    cold: list[float] = field(default_factory=list)  # seconds
    init_ms: list[float] = field(default_factory=list)
    load_ms: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)  # seconds, every warm request


def _say(message: str) -> None:
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


def _builds(target: Path) -> list[Build]:
    from bench._support import lambda_sdk_dir, stdout_to_stderr

    def runtime_dirs(build_dir: Path, version: str) -> list[Path]:
        dirs = [runtime_dir(version)]
        if not (build_dir / "SklearnDependenciesLayer" / "python" / "boto3").is_dir():
            dirs.append(lambda_sdk_dir(version))  # Lambda's runtime provides boto3
        return dirs

    builds: list[Build] = []
    with stdout_to_stderr():
        python = base_python() if local_python_version() == TARGET_PYTHON else None
        python = python or runtime_python(TARGET_PYTHON)
        if python is None:
            _say(f"no CPython {TARGET_PYTHON} on this machine: the target build is not run")
        else:
            dirs = runtime_dirs(target, TARGET_PYTHON)
            label = f"target build, Python {TARGET_PYTHON}"
            builds.append(Build(label, python, _python_version(python), target, dirs))
        local = local_python_version()
        if local != TARGET_PYTHON:
            _say(f"make build PYTHON_VERSION={local} (the local-Python variant) ...")
            local_build = build(local)
            python = base_python()
            dirs = runtime_dirs(local_build, local)
            label = f"local build, Python {local}"
            builds.append(Build(label, python, _python_version(python), local_build, dirs))
    return builds


def _load_ms(logs: list[str]) -> float | None:
    for line in logs:
        match = _MODEL_LOADED.search(line)
        if match is not None:
            return float(match["seconds"]) * 1e3
    return None


def _run(build: Build, kind: str, environment: dict[str, str], warm: int) -> Samples:
    """A fresh emulator and /tmp: one cold /predict, then WARM more on the same environment."""
    from tests.support.events import load_event

    event = load_event("predict.json")
    samples = Samples()
    with tempfile.TemporaryDirectory(prefix="cold-start-tmp-") as tmp:
        spec = build.spec(kind, {**environment, "TMPDIR": tmp})
        base = {**CREDENTIALS, "PATH": os.environ.get("PATH", "")}
        with RieProcess(spec, base_env=base) as rie:
            cold = rie.invoke(event, timeout=120)
            _check(kind, cold.payload, cold.logs)
            samples.cold.append(cold.seconds)
            if cold.report is not None and cold.report.init_ms is not None:
                samples.init_ms.append(cold.report.init_ms)
            load = _load_ms(cold.logs)
            if load is not None:
                samples.load_ms.append(load)
            for _ in range(warm):
                invocation = rie.invoke(event, timeout=30)
                _check(kind, invocation.payload, invocation.logs)
                samples.warm.append(invocation.seconds)
    return samples


def _check(kind: str, payload: Any, logs: list[str]) -> None:
    if not isinstance(payload, dict) or payload.get("statusCode") != 200:
        tail = "\n".join(logs[-30:])
        raise SystemExit(f"{kind}: /predict failed: {payload}\n{tail}")
    if kind != "trivial" and json.loads(payload["body"])["prediction"] != "setosa":
        raise SystemExit(f"{kind}: predicted {payload['body']}")


def _measure(
    build: Build, artifact: Artifact, runs: int, warmup: int, warm: int
) -> dict[str, Samples]:
    import boto3

    from bench._support import moto_server
    from devstack.rie import free_port
    from model_store import open_registry

    results = {kind: Samples() for kind in KINDS}
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
            # The baseline's own configuration: where the joblib is and the feature order.
            "MODEL_KEY": "models/iris/1/model.joblib",
            "FEATURES": ",".join(artifact.manifest.feature_names),
        }
        for i in range(warmup + runs):
            shift = i % len(KINDS)
            order = KINDS[shift:] + KINDS[:shift]
            line = []
            for kind in order:
                samples = _run(build, kind, environment, warm if i >= warmup else 3)
                line.append(
                    f"{kind} {samples.cold[0]:.3f}s/{statistics.median(samples.warm) * 1e3:.2f}ms"
                )
                if i >= warmup:
                    into = results[kind]
                    into.cold += samples.cold
                    into.init_ms += samples.init_ms
                    into.load_ms += samples.load_ms
                    into.warm += samples.warm
            label = "warm-up" if i < warmup else f"run {i - warmup + 1}/{runs}"
            _say(f"  {label}: " + ", ".join(line))
    return results


def _median(values: list[float], scale: float = 1.0) -> str:
    return f"{statistics.median(values) * scale:9.3f}" if values else f"{'n/a':>9}"


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _print(build: Build, results: dict[str, Samples], runs: int, warm: int) -> None:
    print(f"\n{build.label}: CPython {build.version} ({build.python})")
    print(f"  {runs} cold starts per function, {warm} warm requests after each")
    header = f"  {'':20}{'cold s':>9}{'min s':>9}{'init s':>9}{'load s':>9}"
    print(header + f"{'warm p50 ms':>13}{'warm p99 ms':>13}")
    for kind in KINDS:
        s = results[kind]
        print(
            f"  {kind:20}{_median(s.cold)}{min(s.cold):9.3f}{_median(s.init_ms, 1e-3)}"
            f"{_median(s.load_ms, 1e-3)}{statistics.median(s.warm) * 1e3:13.3f}"
            f"{_p99(s.warm) * 1e3:13.3f}"
        )
    baseline = results["baseline"]
    for kind in ("project, sklearn", "project, onnx"):
        s = results[kind]
        ratios = {
            "cold": statistics.median(s.cold) / statistics.median(baseline.cold),
            "warm p50": statistics.median(s.warm) / statistics.median(baseline.warm),
        }
        for what, ratio in ratios.items():
            verdict = (
                f"   target <= {RATIO_TARGET}x   {_verdict(ratio <= RATIO_TARGET)}"
                if kind == "project, onnx"
                else "   (no target)"
            )
            print(f"  {kind}: {what} / baseline {ratio:5.2f}x{verdict}")


def _print_layers(target: Path) -> None:
    onnx = size_of(target / "OnnxDependenciesLayer") / MIB
    sklearn = size_of(target / "SklearnDependenciesLayer") / MIB
    print(f"dependency layers, target runtime (Python {TARGET_PYTHON}, .aws-sam/build), unzipped:")
    print(
        f"  onnx     {onnx:6.1f} MiB   target <= {ONNX_LAYER_TARGET_MIB:.0f} MiB   "
        f"{_verdict(onnx <= ONNX_LAYER_TARGET_MIB)}"
    )
    print(
        f"  sklearn  {sklearn:6.1f} MiB   target <= {SKLEARN_LAYER_BEFORE_MIB} MiB (before)  "
        f"{_verdict(sklearn <= SKLEARN_LAYER_BEFORE_MIB + 0.05)}"
    )


# --- --profile-imports ----------------------------------------------------------------

PROFILE = """\
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
    memory_limit_in_mb=1024, aws_request_id="bench", log_group_name="g", log_stream_name="s",
    get_remaining_time_in_millis=lambda: 30_000,
)
response = module.handler(json.loads(sys.argv[2]), context)
done = time.perf_counter()
assert response["statusCode"] == 200, response
print("PHASES", json.dumps({"import_s": imported - started, "first_invoke_s": done - imported}))
"""


def _profile_imports(build: Build, artifact: Artifact) -> None:
    """The onnx function's cold path in process under -X importtime, by top-level package."""
    import boto3

    from bench._support import moto_server
    from devstack.rie import free_port
    from model_store import open_registry
    from tests.support.events import load_event

    spec = build.spec("project, onnx", {})
    paths = spec.python_path()
    command = [build.python, "-I", "-S", "-X", "importtime", "-c", PROFILE]
    command += [json.dumps(paths), json.dumps(load_event("predict.json"))]
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
            "SERVING_RUNTIME": "onnx",
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_LAMBDA_FUNCTION_NAME": "PredictApiFunction",
            "TMPDIR": tmp,
        }
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"profile of {build.label} failed:\n{done.stderr[-3000:]}")
    phases = next(
        json.loads(line.removeprefix("PHASES "))
        for line in done.stdout.splitlines()
        if line.startswith("PHASES ")
    )
    totals: dict[str, float] = defaultdict(float)
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _, name = line.removeprefix("import time:").split("|")
            totals[name.strip().split(".")[0]] += float(self_us)
    _say(
        f"\n--- {build.label}, project onnx in process: import {phases['import_s']:.3f} s, "
        f"first /predict {phases['first_invoke_s']:.3f} s; imports by package (self time):"
    )
    for name, us in sorted(totals.items(), key=lambda item: -item[1])[:20]:
        _say(f"    {name:28}{us / 1e3:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--warm", type=int, default=200, help="warm requests per cold start")
    parser.add_argument("--profile-imports", action="store_true")
    args = parser.parse_args()
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(CREDENTIALS)

    from bench._support import iris_best_artifact, stdout_to_stderr

    _say(f"make build PYTHON_VERSION={TARGET_PYTHON} (the target runtime) ...")
    with stdout_to_stderr():
        target = build(TARGET_PYTHON)
    builds = _builds(target)
    _say("training the iris best model (six-algorithm grid search) ...")
    artifact = iris_best_artifact()
    if artifact.manifest.onnx is None:
        raise SystemExit(f"the iris best has no ONNX form: {artifact.manifest.onnx_refused}")
    _print_layers(target)
    print(
        f"\nmodel: {artifact.manifest.algorithm} {artifact.manifest.params} (iris best), "
        f"ONNX form: {artifact.manifest.onnx.graph} graph; S3: moto server over HTTP"
    )
    for each in builds:
        _say(f"{each.label}: {args.runs} rounds of {len(KINDS)} cold starts ...")
        results = _measure(each, artifact, args.runs, args.warmup, args.warm)
        _print(each, results, args.runs, args.warm)
        sys.stdout.flush()
    if args.profile_imports:
        for each in builds:
            _profile_imports(each, artifact)


if __name__ == "__main__":
    main()
