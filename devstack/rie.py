"""One Lambda execution environment: a function run by the Runtime Interface Emulator.

The RIE binary ships inside aws-sam-cli; ``awslambdaric`` is the runtime client that
real Lambda Python runtimes use. Together they run a handler exactly as Lambda does:
init on the first invoke, one invocation at a time, START/END/REPORT lines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import queue
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
_INVOKE_FAILED = "Invoke DONE failed"
_INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: (?P<init>[\d.]+)\)")
_REPORT = re.compile(
    r"REPORT RequestId: (?P<request_id>\S+)\s+"
    r"(?:Init Duration: (?P<init>[\d.]+) ms\s+)?"
    r"Duration: (?P<duration>[\d.]+) ms\s+"
    r"Billed Duration: (?P<billed>[\d.]+) ms\s+"
    r"Memory Size: (?P<memory>\d+) MB"
    r"(?:\s+Max Memory Used: (?P<max_memory>\d+) MB)?"
)


def rie_binary() -> Path:
    """The emulator shipped with aws-sam-cli, for this machine's architecture."""
    import samcli

    arch = "arm64" if platform.machine().lower() in {"aarch64", "arm64"} else "x86_64"
    return Path(samcli.__file__).parent / "local" / "rapid" / f"aws-lambda-rie-{arch}"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Report:
    """The emulator's REPORT line for one invocation."""

    request_id: str
    duration_ms: float
    billed_ms: float
    memory_mb: int
    max_memory_mb: int | None  # None: not measured
    init_ms: float | None
    line: str

    @classmethod
    def parse(cls, line: str) -> Report | None:
        match = _REPORT.search(line)
        if match is None:
            return None
        init = match["init"]
        return cls(
            request_id=match["request_id"],
            duration_ms=float(match["duration"]),
            billed_ms=float(match["billed"]),
            memory_mb=int(match["memory"]),
            max_memory_mb=int(match["max_memory"]) if match["max_memory"] else None,
            init_ms=float(init) if init else None,
            line=line.strip(),
        )

    def cloudwatch_line(self) -> str:
        """The REPORT line as CloudWatch shows it; a figure not measured is left out."""
        init = f"Init Duration: {self.init_ms:.2f} ms\t" if self.init_ms is not None else ""
        used = (
            f"\tMax Memory Used: {self.max_memory_mb} MB" if self.max_memory_mb is not None else ""
        )
        return (
            f"REPORT RequestId: {self.request_id}\t{init}Duration: {self.duration_ms:.2f} ms\t"
            f"Billed Duration: {self.billed_ms:.0f} ms\tMemory Size: {self.memory_mb} MB{used}"
        )

    def measured(self, init_ms: float | None, max_memory_mb: int | None) -> Report:
        """This report with the figures measured outside the emulator, whose own are not
        measurements (a near-zero Init Duration; Max Memory Used = Memory Size)."""
        report = dataclasses.replace(self, init_ms=init_ms, max_memory_mb=max_memory_mb)
        return dataclasses.replace(report, line=report.cloudwatch_line())


@dataclass(frozen=True)
class Invocation:
    payload: Any
    report: Report | None
    logs: list[str]
    seconds: float

    @property
    def failed(self) -> bool:
        """The handler raised: Lambda answers with an errorType/errorMessage document."""
        return isinstance(self.payload, dict) and "errorType" in self.payload

    @property
    def crashed(self) -> bool:
        """The runtime itself died (exit, signal, timeout): the environment is spent."""
        return self.failed and str(self.payload["errorType"]).startswith(("Runtime.", "Sandbox."))


@dataclass(frozen=True)
class FunctionSpec:
    """What Lambda needs to run a function: code, handler, environment, limits."""

    name: str
    handler: str
    code_dir: Path
    layer_dirs: Sequence[Path] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    memory_mb: int = 512
    timeout_s: int = 30
    python: str = "python3"
    # Directories with the runtime client (awslambdaric), like Lambda's /var/runtime.
    runtime_dirs: Sequence[Path] = ()
    # Keep the interpreter's own site-packages off the path, as in Lambda.
    isolated: bool = False
    # The deployed name (AWS_LAMBDA_FUNCTION_NAME), when it differs from the label.
    function_name: str | None = None

    def python_path(self) -> list[str]:
        return [str(self.code_dir), *map(str, self.layer_dirs), *map(str, self.runtime_dirs)]


class RieProcess:
    """One emulator process serving one function, one invocation at a time."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        on_log: Callable[[str], None] | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.host = host
        self.port = port or free_port(host)
        self._on_log = on_log
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._process: subprocess.Popen[str] | None = None
        self._pump_thread: threading.Thread | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self.invocations = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{INVOKE_PATH}"

    def _environment(self) -> dict[str, str]:
        spec = self.spec
        env = {
            key: value
            for key, value in self._base_env.items()
            if key.startswith(("AWS_", "PATH", "HOME", "LANG", "LC_", "TZ", "SYSTEMROOT"))
        }
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": spec.function_name or spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_s),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name or spec.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": "local",
                "AWS_REGION": self._base_env.get("AWS_REGION", "us-east-1"),
                "AWS_DEFAULT_REGION": self._base_env.get("AWS_DEFAULT_REGION", "us-east-1"),
                "LAMBDA_TASK_ROOT": str(spec.code_dir),
                "_HANDLER": spec.handler,
                "PYTHONPATH": os.pathsep.join(spec.python_path()),
                "PYTHONUNBUFFERED": "1",
                "TZ": ":UTC",
            }
        )
        env.update(spec.environment)
        return env

    def start(self, timeout: float = 15.0) -> None:
        """Start the emulator; the function itself initialises on the first invoke."""
        # -I -S: no PYTHON* variables, no user or venv site-packages, as in Lambda.
        python_flags = ["-I", "-S"] if self.spec.isolated else []
        # -I drops PYTHONPATH too, so the paths go in through a bootstrap instead.
        command = [
            str(rie_binary()),
            "--runtime-interface-emulator-address",
            f"{self.host}:{self.port}",
            "--runtime-api-address",
            f"127.0.0.1:{free_port()}",
            self.spec.python,
            *python_flags,
            *(
                ["-c", _ISOLATED_BOOTSTRAP, json.dumps(self.spec.python_path())]
                if self.spec.isolated
                else ["-m", "awslambdaric"]
            ),
            self.spec.handler,
        ]
        self._process = subprocess.Popen(
            command,
            env=self._environment(),
            cwd=self.spec.code_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.spec.name}: emulator exited with {self._process.returncode}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.spec.name}: emulator did not listen on {self.port}")

    def _pump(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        init_ms: float | None = None  # from the INIT REPORT line, for the next REPORT
        for line in self._process.stdout:
            init = _INIT_REPORT.search(line)
            if init is not None:
                init_ms = float(init["init"])
            report = Report.parse(line)
            if report is not None:
                line = report.measured(init_ms, self.peak_memory_mb()).line + "\n"
                init_ms = None
            self._lines.put(line)
            if self._on_log is not None:
                self._on_log(line.rstrip("\n"))

    def peak_memory_mb(self) -> int | None:
        """The runtime's peak resident memory so far (VmHWM), as Lambda's Max Memory Used
        counts the sandbox's; None where /proc cannot tell."""
        peak = 0
        for pid in self.runtime_pids():
            with contextlib.suppress(OSError, ValueError):
                status = Path(f"/proc/{pid}/status").read_text()
                for entry in status.splitlines():
                    if entry.startswith("VmHWM:"):
                        peak = max(peak, int(entry.split()[1]))
        return -(-peak // 1024) if peak else None

    def invoke(self, event: Any, *, timeout: float | None = None) -> Invocation:
        """Invoke once and wait for the REPORT line; never two at once on one emulator."""
        with self._lock:
            self._drain()
            started = time.perf_counter()
            request = urllib.request.Request(  # noqa: S310 - our own http://127.0.0.1 URL
                self.url,
                data=json.dumps(event).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            limit = timeout or self.spec.timeout_s + 5
            try:
                with urllib.request.urlopen(request, timeout=limit) as response:  # noqa: S310
                    body = response.read()
            except urllib.error.HTTPError as exc:
                body = exc.read()
            seconds = time.perf_counter() - started
            self.invocations += 1
            logs, report = self._collect_until_report(deadline=time.monotonic() + 5)
            try:
                payload: Any = json.loads(body) if body else None
            except ValueError:
                payload = body.decode(errors="replace")
            return Invocation(payload, report, logs, seconds)

    def _drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._lines.get_nowait()

    def _collect_until_report(self, deadline: float) -> tuple[list[str], Report | None]:
        logs: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            logs.append(line.rstrip("\n"))
            if _INVOKE_FAILED in line:
                # The runtime died mid-invocation: the emulator sends no REPORT line.
                return logs, None
            report = Report.parse(line)  # already with the measured figures (_pump)
            if report is not None:
                return logs, report
        return logs, None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def runtime_pids(self) -> list[int]:
        """The runtime processes (the function's interpreter) the emulator started."""
        if self._process is None:
            return []
        children: list[int] = []
        for task in Path(f"/proc/{self._process.pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                children.extend(int(pid) for pid in task.read_text().split())
        return children

    def terminate(self) -> None:
        """Ask the emulator and its runtime to end (SIGTERM), without waiting."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            self.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
                process.wait(timeout=5)
        if self._pump_thread is not None:
            self._pump_thread.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> RieProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Under -I the interpreter ignores PYTHONPATH and site-packages; put the function's
# paths first (as Lambda's /var/task, /opt/python, /var/runtime) and run awslambdaric.
_ISOLATED_BOOTSTRAP = (
    "import json, runpy, sys; "
    "sys.path[:0] = json.loads(sys.argv.pop(1)); "
    "sys.argv[0] = 'awslambdaric'; "
    "runpy.run_module('awslambdaric', run_name='__main__', alter_sys=True)"
)
