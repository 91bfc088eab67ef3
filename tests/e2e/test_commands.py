"""`make local` and `make invoke` as a user runs them: the printed examples work when pasted.

`make local` runs `python -m devstack local`; `make invoke` runs `python -m devstack invoke`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from model_store import Artifact
from tests.support.local_stack import model_record, request

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Running:
    process: subprocess.Popen[str]
    banner: list[str]
    state_dir: Path
    logs: list[str]  # what it printed after the banner, read as it comes

    def commands(self, first_word: str) -> list[str]:
        """The example commands of the banner that start with FIRST_WORD, joined over `\\`."""
        commands, current = [], ""
        for raw in self.banner:
            line = raw.strip()
            if current:
                current += " " + line.rstrip("\\").strip()
                if not line.endswith("\\"):
                    commands.append(current)
                    current = ""
            elif line.startswith(first_word):
                current = line.rstrip("\\").strip()
                if not line.endswith("\\"):
                    commands.append(current)
                    current = ""
        return commands

    def value(self, label: str) -> str:
        for line in self.banner:
            if line.strip().startswith(label):
                return line.strip()[len(label) :].split()[0]
        raise AssertionError(f"{label!r} not in the banner")


@pytest.fixture(scope="module")
def make_local(
    tmp_path_factory: pytest.TempPathFactory, iris_artifact: Artifact
) -> Iterator[Running]:
    state = tmp_path_factory.mktemp("make-local")
    iris_artifact.write(state / "seed" / "iris")  # what a first run trained and kept
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack",
            "local",
            "--port",
            "0",
            "--s3-port",
            "0",
            "--state-dir",
            str(state),
            # The functions verify the seed's signature with moto's KMS: the whole supply
            # chain check runs in every test of this module.
            "--require-signatures",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert process.stdout is not None
    banner: list[str] = []
    deadline = time.monotonic() + 300
    try:
        for line in process.stdout:
            banner.append(line.rstrip("\n"))
            if "Ctrl-C stops everything" in line:
                break
            assert time.monotonic() < deadline, "make local did not get ready"
        assert any(line.startswith("ready in") for line in banner), "\n".join(banner)
        # Keep reading the function logs: a full pipe would block the stack's printing.
        logs: list[str] = []
        drain = threading.Thread(target=logs.extend, args=(process.stdout,), daemon=True)
        drain.start()
        yield Running(process, banner, state, logs)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        process.stdout.close()


def bash(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_the_banner_says_where_everything_is(make_local: Running) -> None:
    assert make_local.value("API").startswith("http://127.0.0.1:")
    assert make_local.value("API").endswith("/Prod")
    assert len(make_local.value("API key")) >= 20
    assert make_local.value("S3 endpoint").startswith("http://127.0.0.1:")
    assert "(DataBucket)" in "\n".join(make_local.banner)
    assert make_local.value("runtime") == "onnx"  # the template's default ServingRuntime
    assert make_local.value("signatures") == "required,"
    for name in ("api-key", "stack.json", "moto.log"):  # key values: the owner's only
        assert (make_local.state_dir / name).stat().st_mode & 0o077 == 0, name
    assert json.loads((make_local.state_dir / "stack.json").read_text())["api_key"] == (
        make_local.value("API key")
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed here")
def test_the_printed_curl_examples_work(make_local: Running) -> None:
    health, predict = make_local.commands("curl")
    assert json.loads(bash(health).stdout) == {"status": "ok"}
    answer = bash(predict)
    assert json.loads(answer.stdout)["prediction"] in {"setosa", "versicolor", "virginica"}, answer


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed here")
def test_the_printed_csv_drop_is_scored(make_local: Running) -> None:
    (make_csv,) = make_local.commands("printf")
    copy, listing = make_local.commands("AWS_ACCESS_KEY_ID")
    assert bash(make_csv).returncode == 0
    copied = bash(copy)
    assert copied.returncode == 0, copied.stderr
    deadline = time.monotonic() + 60
    while "reports/sample.json" not in (listed := bash(listing).stdout):
        assert time.monotonic() < deadline, listed
        time.sleep(0.5)
    assert "predictions/sample.csv" in listed


def test_the_printed_cli_commands_work(make_local: Running) -> None:
    export = " && ".join(make_local.commands("export"))
    models = bash(f"{export} && {make_local.commands('.venv/bin/model-store list')[0]}")
    assert models.returncode == 0, models.stderr
    assert re.search(r"iris\s+1\s+production -> 1", models.stdout), models.stdout
    created = bash(f"{export} && {make_local.commands('.venv/bin/model-store keys')[0]}")
    assert created.returncode == 0, created.stderr
    assert "created key my-client" in created.stdout


def test_with_signatures_required_the_signed_seed_answers_and_verifies(
    make_local: Running,
) -> None:
    answer = request(
        f"{make_local.value('API')}/predict",
        "POST",
        body=model_record(),
        headers={"x-api-key": make_local.value("API key")},
    )
    assert answer.status == 200, answer.body
    export = " && ".join(make_local.commands("export"))
    assert "MODEL_STORE_SIGN_KEY=arn:aws:kms:" in export
    verify = ".venv/bin/model-store verify iris@1 --key $MODEL_STORE_SIGN_KEY --registry"
    verified = bash(f"{export} && {verify} {make_local.value('registry')}")
    assert verified.returncode == 0, verified.stderr


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    try:
        socket.create_connection((host, int(port)), 0.5).close()
    except OSError:
        return False
    return True


def test_ctrl_c_stops_everything(make_local: Running) -> None:
    api, s3 = make_local.value("API"), make_local.value("S3 endpoint")
    assert _port_open(api)
    assert _port_open(s3)
    make_local.process.send_signal(signal.SIGINT)
    # Past 45 s the stack prints its threads' stacks and exits 1: show them.
    assert make_local.process.wait(timeout=60) == 0, "".join(make_local.logs[-200:])
    assert not _port_open(api)
    assert not _port_open(s3)
    assert not (make_local.state_dir / "stack.json").exists()


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", "invoke", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_invoke_runs_one_function_and_prints_the_response_and_report(
    stack: LocalStack,
) -> None:
    result = invoke(
        "PredictApiFunction", "--event", "events/predict.json", "--s3-endpoint", stack.s3_endpoint
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["prediction"] == "setosa"
    report = [line for line in result.stderr.splitlines() if line.startswith("REPORT")]
    assert len(report) == 1
    assert re.search(r"Init Duration: [1-9][\d.]* ms\tDuration: [\d.]+ ms", report[0]), report


@pytest.mark.parametrize(
    ("overrides", "runtime"),
    [((), "onnx"), (("--parameter-overrides", "ServingRuntime=sklearn"), "sklearn")],
)
def test_make_invoke_serves_the_runtime_the_parameters_choose(
    stack: LocalStack, overrides: tuple[str, ...], runtime: str
) -> None:
    result = invoke(
        "PredictApiFunction",
        "--event",
        "events/predict.json",
        "--s3-endpoint",
        stack.s3_endpoint,
        *overrides,
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["prediction"] == "setosa"
    assert f"{runtime} runtime) in" in result.stderr  # the loader's own line


def test_make_invoke_prints_a_handler_error_like_sam_local_invoke(stack: LocalStack) -> None:
    result = invoke(
        "BatchScoringFunction", "--event", "events/s3_put.json", "--s3-endpoint", stack.s3_endpoint
    )
    assert result.returncode == 0, result.stderr  # as `sam local invoke`: an error is a result
    error = json.loads(result.stdout)
    assert error["errorType"] == "BatchFailedError"
    assert "iris sample.csv" in error["errorMessage"]  # the key, URL-decoded


def test_make_invoke_names_the_functions_when_one_is_unknown() -> None:
    result = invoke("NoSuchFunction", "--event", "events/predict.json", "--skip-build")
    assert result.returncode == 2
    assert "PredictApiFunction" in result.stderr
    assert "BatchScoringFunction" in result.stderr


def test_a_second_stack_on_the_same_ports_says_so_and_starts_nothing(
    stack: LocalStack, tmp_path: Path
) -> None:
    from devstack.stack import StackConfig, StackError

    taken = int(stack.s3_endpoint.rsplit(":", 1)[1])
    second = LocalStack(StackConfig(api_port=0, s3_port=taken, state_dir=tmp_path, build=False))
    with pytest.raises(StackError, match=f"port {taken} .* is in use"):
        second.start()
    assert second.pools == {}
    assert not (tmp_path / "stack.json").exists()
