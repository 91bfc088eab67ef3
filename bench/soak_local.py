"""A soak of the local stack: minutes of /predict load and CSV drops, the RSS of every
process in its tree sampled throughout. Does anything grow?

    .venv/bin/python bench/soak_local.py [--minutes 5] [--clients 8] [--drop-every 30]
        [--rows 50000] [--sample-every 10] [--warmup 30] [--cooldown 60]
        [--max-environments 4] [--template-limits] [--keep-objects] [--stack-log FILE]
        [--samples-csv FILE] [--state-dir DIR] [--override NAME=VALUE] [--pause-ms MS]

The stack is what `make local` runs, as a subprocess: ``python -m devstack local --port 0
--s3-port 0 --state-dir TMP`` (a fresh state directory: the seed model is trained on
start, ~10-60 s, as on a first `make local`). Its banner gives the API URL, the key, the
S3 endpoint, the data bucket and the trigger's prefix. The usage plan's throttle and quota
are raised out of the way unless --template-limits (the template's 50 rps and 10,000 a
day would turn most of a soak into 429s).

For MINUTES: CLIENTS threads POST events/predict.json's body to /predict with the key,
each over its own keep-alive connection, back to back; every DROP_EVERY s a CSV of ROWS
iris-like rows is put under the trigger's prefix in the data bucket, and its report
(``reports/<path>.json``) is awaited: scored means status succeeded with every row
scored. Checked inputs and outputs are deleted again (every version written), so moto's
S3 holds about the same bytes all along (--keep-objects keeps them).

Every SAMPLE_EVERY s the RSS (VmRSS) of every process under the stack's pid (walking
/proc/PID/task/*/children down) is read and grouped by role, told from command lines:
the devstack process, moto, each emulator (aws-lambda-rie, numbered per function in
order of start) and the function runtime under it (awslambdaric), anything else by pid
(joblib/loky workers left by training the seed, say). Per role: RSS at the end of the
warm-up (start), at the end of the load (end), the peak, and the least-squares slope
over the samples between. The verdict is "flat" when every role grew by less than
max(10 % of its start, 30 MB) from start to end. Sampling goes on for COOLDOWN s after
the load stops, to show whether anything still climbs. Finally any loky process still in
the tree is listed, the stack gets SIGINT (Ctrl-C) and must exit within 60 s, and
processes of its tree left behind are reported (and ended).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import write_iris_like_csv  # noqa: E402

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# The template's usage plan allows 50 rps (burst 100) and 10,000 requests a day per key.
UNTHROTTLED = {
    "ThrottleRateLimit": "10000",
    "ThrottleBurstLimit": "10000",
    "QuotaPerDay": "100000000",
}
STOP_LIMIT_SECONDS = 60.0
LEFT_BEHIND_GRACE = 10.0
# A role is flat when it grew by less than the larger of these from start to end.
GROWTH_FRACTION = 0.10
GROWTH_FLOOR_MB = 30.0
# After the load, a role "still climbs" when it grew by more than this.
COOLDOWN_CLIMB_MB = 5.0
S3_CONFIG = Config(
    connect_timeout=5, read_timeout=60, retries={"total_max_attempts": 2, "mode": "standard"}
)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the process tree ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    started: int  # clock ticks after boot: with the pid, tells a reused pid apart
    argv: tuple[str, ...]
    rss_kb: int

    @property
    def identity(self) -> tuple[int, int]:
        return self.pid, self.started

    @property
    def command(self) -> str:
        return " ".join(self.argv)


def read_proc(pid: int) -> Proc | None:
    """PID's parent, start time, command line and VmRSS; None once it is gone."""
    base = Path(f"/proc/{pid}")
    try:
        stat = (base / "stat").read_text()
        raw = (base / "cmdline").read_bytes()
        status = (base / "status").read_text()
    except OSError:
        return None
    # The command name in parentheses may hold spaces; the fields after it do not.
    fields = stat[stat.rindex(")") + 2 :].split()
    args = raw.decode(errors="replace").split("\0")
    if args and args[-1] == "":
        args.pop()
    rss = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
            break
    return Proc(pid, int(fields[1]), int(fields[19]), tuple(args), rss)


def child_pids(pid: int) -> list[int]:
    """Children of PID, from every one of its threads (each forks its own)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        with contextlib.suppress(OSError, ValueError):
            found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def _children_by_scan() -> dict[int, list[int]]:
    """Every process's children, from each /proc/PID/stat (kernels without .../children)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                children[int(stat[stat.rindex(")") + 2 :].split()[1])].append(int(entry.name))
    return children


_ERROR = re.compile(r"\bERROR\b|Traceback")
_HAS_CHILDREN_FILES = Path(f"/proc/self/task/{os.getpid()}/children").exists()


def process_tree(root: int) -> list[Proc]:
    """ROOT and every process below it, parents before children."""
    scanned = None if _HAS_CHILDREN_FILES else _children_by_scan()
    found: list[Proc] = []
    queue, seen = [root], set()
    while queue:
        pid = queue.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        proc = read_proc(pid)
        if proc is None:
            continue
        found.append(proc)
        queue.extend(child_pids(pid) if scanned is None else scanned.get(pid, []))
    return found


def is_emulator(proc: Proc) -> bool:
    return bool(proc.argv) and Path(proc.argv[0]).name.startswith("aws-lambda-rie")


def is_loky(proc: Proc) -> bool:
    return "loky" in proc.command


def function_of(argv: Iterable[str]) -> str:
    """The function an emulator or runtime serves: its code directory (the first entry of
    the isolated bootstrap's path list, .../build/<LogicalId>), else the handler's package."""
    args = list(argv)
    for arg in args:
        if arg.startswith("["):
            with contextlib.suppress(ValueError, IndexError, TypeError):
                return Path(json.loads(arg)[0]).name
    return args[-1].split(".", 1)[0] if args else "?"


def other_kind(proc: Proc) -> str:
    command = proc.command
    if "popen_loky_posix" in command:
        return "loky worker"
    if is_loky(proc):
        return "loky resource tracker" if "resource_tracker" in command else "loky process"
    if "multiprocessing.resource_tracker" in command:
        return "multiprocessing resource tracker"
    name = Path(proc.argv[0]).name if proc.argv else "?"
    if "-m" in proc.argv[:-1]:
        name += " -m " + proc.argv[proc.argv.index("-m") + 1]
    return name


class RoleNamer:
    """Roles for the processes of the stack's tree, stable from one sample to the next."""

    def __init__(self, stack_pid: int) -> None:
        self.stack_pid = stack_pid
        self._environments: dict[tuple[int, int], str] = {}
        self._numbers: collections.Counter[str] = collections.Counter()

    def roles(self, procs: list[Proc]) -> dict[Proc, str]:
        # Emulators are numbered per function in the order they started.
        for proc in sorted(procs, key=lambda p: (p.started, p.pid)):
            if is_emulator(proc) and proc.identity not in self._environments:
                function = function_of(proc.argv[1:])
                self._numbers[function] += 1
                self._environments[proc.identity] = f"{function}#{self._numbers[function]}"
        by_pid = {proc.pid: proc for proc in procs}
        return {proc: self._role(proc, by_pid) for proc in procs}

    def _role(self, proc: Proc, by_pid: dict[int, Proc]) -> str:
        if proc.pid == self.stack_pid:
            return "devstack"
        if is_emulator(proc):
            return f"rie {self._environments[proc.identity]}"
        if "moto.server" in proc.command or "devstack.moto_server" in proc.command:
            return "moto"
        if "awslambdaric" in proc.command:
            parent = by_pid.get(proc.ppid)
            if parent is not None and parent.identity in self._environments:
                return f"runtime {self._environments[parent.identity]}"
            return f"runtime {function_of(proc.argv)} (pid {proc.pid})"
        return f"{other_kind(proc)} (pid {proc.pid})"


@dataclasses.dataclass
class Sample:
    t: float  # seconds since the load started
    rss_kb: dict[str, int]
    procs: list[Proc]


class Sampler(threading.Thread):
    """Samples the stack's tree at ORIGIN + k * INTERVAL (k >= 1) until stopped."""

    def __init__(
        self,
        stack_pid: int,
        origin: float,
        interval: float,
        on_sample: Callable[[Sample], None] | None = None,
    ) -> None:
        super().__init__(name="sampler", daemon=True)
        self.stack_pid = stack_pid
        self.origin = origin
        self.interval = interval
        self.namer = RoleNamer(stack_pid)
        self.samples: list[Sample] = []
        self.role_processes: dict[str, set[tuple[int, int]]] = collections.defaultdict(set)
        self.loky_seen: dict[tuple[int, int], Proc] = {}
        self._on_sample = on_sample
        self._stop_event = threading.Event()

    def take(self) -> Sample:
        t = time.monotonic() - self.origin
        procs = process_tree(self.stack_pid)
        rss: dict[str, int] = collections.defaultdict(int)
        for proc, role in self.namer.roles(procs).items():
            rss[role] += proc.rss_kb
            self.role_processes[role].add(proc.identity)
            if is_loky(proc):
                self.loky_seen.setdefault(proc.identity, proc)
        sample = Sample(t, dict(rss), procs)
        self.samples.append(sample)
        if self._on_sample is not None:
            self._on_sample(sample)
        return sample

    def run(self) -> None:
        k = 1
        while not self._stop_event.wait(
            max(0.0, self.origin + k * self.interval - time.monotonic())
        ):
            self.take()
            k += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)


# -- the stack ----------------------------------------------------------------------------


class StackProcess:
    """`python -m devstack local` as a subprocess; its output is drained all along."""

    def __init__(self, command: list[str], env: dict[str, str], log: IO[str] | None) -> None:
        self.command = command
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            # Its own session: Ctrl-C here reaches it only as this script sends it.
            start_new_session=True,
        )
        self.pid = self.process.pid
        self.banner: dict[str, str] = {}
        self.aws_env: dict[str, str] = {}
        self.ready = threading.Event()
        self.tail: collections.deque[str] = collections.deque(maxlen=60)
        self.errors: collections.deque[str] = collections.deque(maxlen=20)
        self.error_lines = 0
        self.lines_by_source: collections.Counter[str] = collections.Counter()
        self._log = log
        self._pump_thread = threading.Thread(target=self._pump, name="stack-output", daemon=True)
        self._pump_thread.start()

    _BANNER: ClassVar[dict[str, re.Pattern[str]]] = {
        "api_url": re.compile(r"^\s+API\s{2,}(\S+)"),
        "api_key": re.compile(r"^\s+API key\s+(\S+)"),
        "s3_endpoint": re.compile(r"^\s+S3 endpoint\s+(\S+)"),
        "ready_in": re.compile(r"^ready in ([\d.]+) s"),
    }
    _UPLOAD = re.compile(r"\bs3 cp \S+ s3://([^/\s]+)/(\S*)sample\.csv")
    _EXPORT = re.compile(r"^\s+export (.*)$")

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.rstrip("\n")
            if self._log is not None:
                self._log.write(raw)
            self.tail.append(line)
            source, bar, _ = line.partition("|")
            if bar:
                self.lines_by_source[source.strip().split("#", 1)[0]] += 1
                if ("ERROR" in line or "Traceback" in line) and _ERROR.search(line):
                    self.error_lines += 1
                    self.errors.append(line)
            if not self.ready.is_set():
                self._read_banner(line)

    def _read_banner(self, line: str) -> None:
        if line.startswith("local ") and "|" in line:
            _say("  " + line.split("|", 1)[1].strip())
        for name, pattern in self._BANNER.items():
            match = pattern.match(line)
            if match and name not in self.banner:
                self.banner[name] = match[1]
        upload = self._UPLOAD.search(line)
        if upload:
            self.banner["data_bucket"], self.banner["prefix"] = upload[1], upload[2]
        export = self._EXPORT.match(line)
        if export:
            pairs = (word.partition("=") for word in export[1].split())
            self.aws_env = {name: value for name, sep, value in pairs if sep}
        if line.startswith("Function logs follow"):
            self.ready.set()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(1.0):
            if self.process.poll() is not None:
                self._pump_thread.join(timeout=5)
                raise SystemExit(self._failure(f"the stack exited with {self.process.returncode}"))
            if time.monotonic() > deadline:
                raise SystemExit(self._failure(f"the stack was not ready within {timeout:.0f} s"))
        missing = {"api_url", "api_key", "s3_endpoint", "data_bucket"} - set(self.banner)
        if missing:
            raise SystemExit(self._failure(f"the banner lacks {', '.join(sorted(missing))}"))

    def _failure(self, why: str) -> str:
        return why + "; its last lines:\n" + "\n".join(f"  {line}" for line in self.tail)

    def interrupt(self, limit: float) -> tuple[int | None, float]:
        """SIGINT (as Ctrl-C) and wait up to LIMIT s: the exit code (None: still running)
        and the seconds it took."""
        if self.process.poll() is not None:
            return self.process.returncode, 0.0
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        try:
            code = self.process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            return None, time.monotonic() - started
        self._pump_thread.join(timeout=5)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def end_processes(procs: Iterable[Proc]) -> list[Proc]:
    """SIGTERM, then SIGKILL after 5 s, to each of PROCS still alive as the same process
    (same pid and start time); the ones that were."""
    alive = [proc for proc in procs if _same_process(proc)]
    for proc in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_same_process(proc) for proc in alive):
        time.sleep(0.1)
    for proc in alive:
        if _same_process(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
    return alive


def _same_process(proc: Proc) -> bool:
    now = read_proc(proc.pid)
    return now is not None and now.started == proc.started


# -- load ---------------------------------------------------------------------------------


class Client(threading.Thread):
    """POST /predict back to back over one keep-alive connection (a new one after an error)."""

    def __init__(
        self,
        index: int,
        api_url: str,
        api_key: str,
        body: bytes,
        origin: float,
        stop: threading.Event,
        pause: float,
    ) -> None:
        super().__init__(name=f"client-{index}", daemon=True)
        parts = urlsplit(api_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port
        self.path = parts.path.rstrip("/") + "/predict"
        self.body = body
        self.headers = {"x-api-key": api_key, "Content-Type": "application/json"}
        self.origin = origin
        self.stop_event = stop
        self.pause = pause
        # (seconds since the load started, milliseconds, status or error name)
        self.records: list[tuple[float, float, str]] = []

    def run(self) -> None:
        connection: http.client.HTTPConnection | None = None
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
                connection.request("POST", self.path, self.body, self.headers)
                response = connection.getresponse()
                answer = response.read()
                status = str(response.status)
                if response.status == 200 and b'"prediction"' not in answer:
                    status = "200, no prediction"
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                if connection is not None:
                    connection.close()
                connection = None
                self.stop_event.wait(0.5)
            self.records.append((started - self.origin, (time.monotonic() - started) * 1e3, status))
            if self.pause:
                self.stop_event.wait(self.pause)
        if connection is not None:
            connection.close()


@dataclasses.dataclass
class Drop:
    index: int
    key: str
    report_key: str
    output_keys: list[str]
    dropped_at: float
    version_id: str | None = None
    error: str | None = None
    report: dict[str, Any] | None = None
    reported_at: float | None = None
    settled: bool = False
    cleaned: bool = False


class BatchDriver(threading.Thread):
    """Puts a CSV under the trigger's prefix every EVERY s while the load runs, and reads
    each one's report until it is final (succeeded or rejected) or TIMEOUT s passed."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        prefix: str,
        body: bytes,
        *,
        origin: float,
        every: float,
        until: float,
        timeout: float,
        keep_objects: bool,
        run_id: str,
    ) -> None:
        super().__init__(name="batch-driver", daemon=True)
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.body = body
        self.origin = origin
        self.every = every
        self.until = until
        self.timeout = timeout
        self.keep_objects = keep_objects
        self.run_id = run_id
        self.drops: list[Drop] = []
        self.cleanup_errors: list[str] = []
        self._quit = threading.Event()

    def run(self) -> None:
        while not self._quit.is_set():
            t = time.monotonic() - self.origin
            due = len(self.drops) * self.every
            if due < self.until and t >= due:
                self._drop(len(self.drops), t)
            self._check()
            if len(self.drops) * self.every >= self.until and all(d.settled for d in self.drops):
                return
            self._quit.wait(1.0)

    def stop(self, wait: float) -> None:
        self.join(timeout=wait)
        self._quit.set()
        self.join(timeout=30)

    def _drop(self, index: int, t: float) -> None:
        stem = f"soak/{self.run_id}/drop-{index:03d}"
        drop = Drop(
            index,
            key=f"{self.prefix}{stem}.csv",
            report_key=f"reports/{stem}.json",
            output_keys=[f"predictions/{stem}.csv", f"errors/{stem}.csv"],
            dropped_at=t,
        )
        self.drops.append(drop)
        try:
            put = self.s3.put_object(
                Bucket=self.bucket, Key=drop.key, Body=self.body, ContentType="text/csv"
            )
            drop.version_id = put.get("VersionId")
        except (BotoCoreError, ClientError) as exc:
            drop.error, drop.settled = f"upload failed: {exc}", True

    def _check(self) -> None:
        for drop in self.drops:
            if drop.settled:
                continue
            t = time.monotonic() - self.origin
            try:
                got = self.s3.get_object(Bucket=self.bucket, Key=drop.report_key)
                document = json.loads(got["Body"].read())
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in {"NoSuchKey", "404"}:
                    drop.error = f"reading the report: {exc}"
                document = None
            except (BotoCoreError, ValueError) as exc:
                drop.error, document = f"reading the report: {exc}", None
            if document is not None:
                drop.report, drop.reported_at = document, t
                # A failed report is retried by Lambda: a later one may succeed.
                if document.get("status") in {"succeeded", "rejected"}:
                    drop.settled = True
                    if document.get("status") == "succeeded" and not self.keep_objects:
                        self._clean(drop, got.get("VersionId"))
            if not drop.settled and t - drop.dropped_at > self.timeout:
                drop.settled = True

    def _clean(self, drop: Drop, report_version: str | None) -> None:
        """Delete the input and the outputs (the versions written): moto's S3 keeps
        every byte in memory, and its growth would hide a leak."""
        try:
            targets = [(drop.key, drop.version_id), (drop.report_key, report_version)]
            for key in drop.output_keys:
                with contextlib.suppress(ClientError):  # an output may be absent
                    targets.append(
                        (key, self.s3.head_object(Bucket=self.bucket, Key=key).get("VersionId"))
                    )
            for key, version in targets:
                if version:
                    self.s3.delete_object(Bucket=self.bucket, Key=key, VersionId=version)
                else:
                    self.s3.delete_object(Bucket=self.bucket, Key=key)
            drop.cleaned = True
        except (BotoCoreError, ClientError) as exc:
            self.cleanup_errors.append(f"{drop.key}: {exc}")


# -- figures ------------------------------------------------------------------------------


@dataclasses.dataclass
class RoleFigures:
    role: str
    processes: int
    first_t: float
    last_t: float
    ready_mb: float | None = None
    start_mb: float | None = None
    end_mb: float | None = None
    peak_mb: float = 0.0
    slope: float | None = None  # MB/min over the window
    after_mb: float | None = None  # at the end of the cooldown
    after_slope: float | None = None

    @property
    def growth(self) -> float | None:
        if self.start_mb is None or self.end_mb is None:
            return None
        return self.end_mb - self.start_mb

    @property
    def bound(self) -> float:
        return max(GROWTH_FRACTION * (self.start_mb or 0.0), GROWTH_FLOOR_MB)

    @property
    def flat(self) -> bool:
        growth = self.growth
        return growth is None or growth < self.bound

    @property
    def climbs_after(self) -> bool:
        if self.after_mb is None or self.end_mb is None:
            return False
        return self.after_mb - self.end_mb > COOLDOWN_CLIMB_MB and (self.after_slope or 0) > 0


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    if len(points) < 2 or len({t for t, _ in points}) < 2:
        return None
    fit = statistics.linear_regression([t / 60 for t, _ in points], [mb for _, mb in points])
    return fit.slope


def role_figures(
    samples: list[Sample], *, warmup: float, duration: float, roles: dict[str, int]
) -> list[RoleFigures]:
    tolerance = 1.0
    figures = []
    for role, processes in roles.items():
        series = [(s.t, s.rss_kb[role] / 1024) for s in samples if role in s.rss_kb]
        if not series:
            continue
        figure = RoleFigures(role, processes, series[0][0], series[-1][0])
        figure.peak_mb = max(mb for _, mb in series)
        # The first sample is taken when the stack is ready, before any load.
        if role in samples[0].rss_kb:
            figure.ready_mb = samples[0].rss_kb[role] / 1024
        window = [(t, mb) for t, mb in series if warmup - tolerance <= t <= duration + tolerance]
        if window:
            figure.start_mb, figure.end_mb = window[0][1], window[-1][1]
            figure.slope = slope_per_minute(window)
        after = [(t, mb) for t, mb in series if t > duration + tolerance]
        if after:
            figure.after_mb = after[-1][1]
            figure.after_slope = slope_per_minute(window[-1:] + after)
        figures.append(figure)
    return figures


def _role_order(role: str) -> tuple[int, str, int]:
    kinds = ["devstack", "moto", "rie", "runtime"]
    kind = role.split(" ", 1)[0]
    number = re.search(r"#(\d+)", role)
    rank = kinds.index(kind) if kind in kinds else len(kinds)
    name = re.sub(r"#\d+.*", "", role.split(" ", 1)[-1])
    return rank, name, int(number[1]) if number else 0


def _mb(value: float | None, width: int = 8, signed: bool = False) -> str:
    if value is None:
        return f"{'-':>{width}}"
    return f"{value:>+{width}.1f}" if signed else f"{value:>{width}.1f}"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# -- the run ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="load duration (default 5)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent /predict clients")
    parser.add_argument("--pause-ms", type=float, default=0.0, help="each client's pause")
    parser.add_argument("--drop-every", type=float, default=30.0, help="seconds between CSVs")
    parser.add_argument("--rows", type=int, default=50_000, help="rows in each CSV")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS")
    parser.add_argument(
        "--warmup",
        type=float,
        default=30.0,
        help="seconds of load before the start figures (cold starts, first CSV)",
    )
    parser.add_argument("--cooldown", type=float, default=60.0, help="sampling after the load")
    parser.add_argument(
        "--report-timeout", type=float, default=180.0, help="seconds a CSV's report may take"
    )
    parser.add_argument(
        "--max-environments", type=int, default=4, help="per function (make local's 4)"
    )
    parser.add_argument(
        "--template-limits",
        action="store_true",
        help="keep the template's throttle and quota (most requests will be 429)",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter for the stack (repeatable)",
    )
    parser.add_argument(
        "--keep-objects", action="store_true", help="leave the CSVs and outputs in moto's S3"
    )
    parser.add_argument("--state-dir", type=Path, help="the stack's state (default: fresh)")
    parser.add_argument("--stack-log", type=Path, help="write the stack's whole output here")
    parser.add_argument(
        "--samples-csv", type=Path, help="write every sample here (t_s, role, pids, rss_mb)"
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=900.0, help="build, seed training, start"
    )
    args = parser.parse_args()
    duration = args.minutes * 60
    if duration <= 0 or not 0 <= args.warmup < duration or args.clients < 1:
        parser.error("need --minutes > 0, 0 <= --warmup < the load's seconds, --clients >= 1")
    if args.sample_every <= 0 or args.drop_every <= 0 or args.rows < 1:
        parser.error("need --sample-every, --drop-every and --rows > 0")

    with (
        tempfile.TemporaryDirectory(prefix="soak-local-") as tmp_name,
        contextlib.ExitStack() as closing,
    ):
        tmp = Path(tmp_name)
        state_dir = args.state_dir or tmp / "state"
        csv_body = write_iris_like_csv(tmp / "drop.csv", args.rows, seed=7).read_bytes()
        command = [sys.executable, "-m", "devstack", "local", "--port", "0", "--s3-port", "0"]
        command += ["--state-dir", str(state_dir)]
        command += ["--max-environments", str(args.max_environments)]
        overrides = [] if args.template_limits else [f"{k}={v}" for k, v in UNTHROTTLED.items()]
        overrides += args.override
        if overrides:
            command += ["--parameter-overrides", *overrides]
        env = dict(os.environ, NO_COLOR="1", PYTHONUNBUFFERED="1")
        env.pop("AWS_PROFILE", None)
        log = closing.enter_context(args.stack_log.open("w")) if args.stack_log else None
        _say(f"starting: {' '.join(command[1:])}")
        started = time.monotonic()
        stack = StackProcess(command, env, log)
        try:
            stack.wait_ready(args.startup_timeout)
            _say(
                f"  ready in {time.monotonic() - started:.0f} s at {stack.banner['api_url']} "
                f"(pid {stack.pid}; the stack says {stack.banner.get('ready_in', '?')} s)"
            )
            _soak(stack, args, duration, csv_body, started_at=started)
        finally:
            if stack.process.poll() is None:
                # Only on an error: _soak stops the stack itself.
                code, _ = stack.interrupt(STOP_LIMIT_SECONDS)
                if code is None:
                    stack.kill()


def _soak(
    stack: StackProcess,
    args: argparse.Namespace,
    duration: float,
    csv_body: bytes,
    *,
    started_at: float,
) -> None:
    banner = stack.banner
    event = json.loads((ROOT / "events" / "predict.json").read_text())
    predict_body = str(event["body"]).encode()
    s3: S3Client = boto3.client(
        "s3",
        endpoint_url=stack.aws_env.get("AWS_ENDPOINT_URL", banner["s3_endpoint"]),
        region_name=stack.aws_env.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id=stack.aws_env.get("AWS_ACCESS_KEY_ID", "local"),
        aws_secret_access_key=stack.aws_env.get("AWS_SECRET_ACCESS_KEY", "local"),
        config=S3_CONFIG,
    )
    stop_clients = threading.Event()
    origin = time.monotonic()
    clients = [
        Client(
            i,
            banner["api_url"],
            banner["api_key"],
            predict_body,
            origin,
            stop_clients,
            args.pause_ms / 1e3,
        )
        for i in range(args.clients)
    ]
    driver = BatchDriver(
        s3,
        banner["data_bucket"],
        banner.get("prefix", ""),
        csv_body,
        origin=origin,
        every=args.drop_every,
        until=duration,
        timeout=args.report_timeout,
        keep_objects=args.keep_objects,
        run_id=time.strftime("%Y%m%dT%H%M%S"),
    )

    def progress(sample: Sample) -> None:
        done = sum(len(c.records) for c in clients)
        load_seconds = min(max(sample.t, 1e-9), duration)
        scored = sum(1 for d in driver.drops if d.report and d.report.get("status") == "succeeded")
        phase = (
            "ready"
            if sample.t < 1
            else (
                "warm-up"
                if sample.t < args.warmup
                else "load"
                if sample.t <= duration + 1
                else "after"
            )
        )
        total = sum(sample.rss_kb.values()) / 1024
        _say(
            f"  t={sample.t:5.0f} s  {phase:<7}  requests {done:,} ({done / load_seconds:,.0f}/s)  "
            f"CSVs {scored}/{len(driver.drops)} scored  RSS {total:,.0f} MB in "
            f"{len(sample.procs)} processes"
        )

    sampler = Sampler(stack.pid, origin, args.sample_every, progress)
    _say(
        f"load: {args.clients} clients for {duration:.0f} s, a CSV of {args.rows:,} rows every "
        f"{args.drop_every:.0f} s; RSS every {args.sample_every:.0f} s; warm-up {args.warmup:.0f} s"
    )
    sampler.take()  # t = 0: the stack as it is when ready, before any load
    sampler.start()
    for client in clients:
        client.start()
    driver.start()
    _sleep_until(origin + duration)
    stop_clients.set()
    for client in clients:
        client.join(timeout=90)
    _say(f"load stopped; sampling {args.cooldown:.0f} s more")
    _sleep_until(origin + duration + args.cooldown + min(1.0, args.sample_every / 2))
    sampler.stop()
    if args.samples_csv:
        write_samples(args.samples_csv, sampler)
    unsettled = [d for d in driver.drops if not d.settled]
    if unsettled:
        _say(
            f"waiting for {len(unsettled)} CSV report(s) (at most {args.report_timeout:.0f} s each)"
        )
    driver.stop(wait=args.report_timeout + 5)

    final_tree = process_tree(stack.pid)
    final_roles = sampler.namer.roles(final_tree)
    _say("stopping the stack (SIGINT) ...")
    code, stop_seconds = stack.interrupt(STOP_LIMIT_SECONDS)
    if code is None:
        stack.kill()
    # What the stack started should end with it (a resource tracker ends when its pipe
    # closes): give them LEFT_BEHIND_GRACE s, then end the rest, reported.
    others = [p for p in final_tree if p.pid != stack.pid]
    deadline = time.monotonic() + LEFT_BEHIND_GRACE
    while time.monotonic() < deadline and any(_same_process(p) for p in others):
        time.sleep(0.2)
    left_behind = end_processes(others)

    _print_results(
        args,
        duration,
        startup=(origin - started_at, banner.get("ready_in", "?")),
        stack=stack,
        clients=clients,
        driver=driver,
        sampler=sampler,
        final_tree=final_tree,
        final_roles=final_roles,
        stop=(code, stop_seconds),
        left_behind=left_behind,
    )


def write_samples(path: Path, sampler: Sampler) -> None:
    """One line per role and sample: the series behind the slopes."""
    with path.open("w", encoding="utf-8") as out:
        out.write("t_s,role,pids,rss_mb\n")
        for sample in sampler.samples:
            pids: dict[str, list[str]] = collections.defaultdict(list)
            for proc, role in sampler.namer.roles(sample.procs).items():
                pids[role].append(str(proc.pid))
            for role, kb in sorted(sample.rss_kb.items()):
                out.write(f'{sample.t:.1f},"{role}",{" ".join(pids[role])},{kb / 1024:.1f}\n')


def _sleep_until(deadline: float) -> None:
    while (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(remaining, 1.0))


def _print_results(
    args: argparse.Namespace,
    duration: float,
    *,
    startup: tuple[float, str],
    stack: StackProcess,
    clients: list[Client],
    driver: BatchDriver,
    sampler: Sampler,
    final_tree: list[Proc],
    final_roles: dict[Proc, str],
    stop: tuple[int | None, float],
    left_behind: list[Proc],
) -> None:
    limits = (
        "the template's throttle and quota" if args.template_limits else "throttle and quota raised"
    )
    print(
        f"soak: {duration / 60:g} min of load, {args.clients} clients (keep-alive, "
        f"{'back to back' if not args.pause_ms else f'{args.pause_ms:g} ms pauses'}), "
        f"max {args.max_environments} environments per function, {limits}; "
        f"warm-up {args.warmup:g} s, RSS every {args.sample_every:g} s, {args.cooldown:g} s after"
    )
    print(
        f"stack ready in {startup[0]:.0f} s (build, seed training; the stack says {startup[1]} s)"
    )

    # Requests.
    records = [record for client in clients for record in client.records]
    statuses = collections.Counter(status for _, _, status in records)
    print(
        f"\nrequests: {len(records):,} in {duration:.0f} s ({len(records) / duration:,.1f}/s); "
        + ", ".join(f"{status}: {count:,}" for status, count in sorted(statuses.items()))
    )
    windows = [
        ("first minute after warm-up", args.warmup, args.warmup + 60),
        ("last minute of the load", duration - 60, duration),
    ]
    for label, low, high in windows:
        low, high = max(low, 0.0), min(high, duration)
        ms = [m for t, m, s in records if low <= t < high and s == "200"]
        if ms:
            rate = len(ms) / max(1.0, high - low)
            print(
                f"  {label:<28} p50 {_percentile(ms, 0.5):7.1f} ms  p99 "
                f"{_percentile(ms, 0.99):7.1f} ms  ({rate:,.1f}/s answered 200)"
            )

    # CSVs.
    drops = driver.drops
    scored = [
        d
        for d in drops
        if d.report
        and d.report.get("status") == "succeeded"
        and d.report.get("rows_scored") == args.rows
        and not d.report.get("rows_failed")
    ]
    print(
        f"\nCSVs: {len(drops)} dropped ({args.rows:,} rows each), "
        f"{len(scored)} scored with every row"
    )
    if scored:
        waits = [d.reported_at - d.dropped_at for d in scored if d.reported_at is not None]
        speeds = [
            float(d.report["rows_per_second"])
            for d in scored
            if d.report and d.report.get("rows_per_second")
        ]
        print(
            f"  report seen after the upload: median {statistics.median(waits):.1f} s, max "
            f"{max(waits):.1f} s (polled every ~1 s)"
        )
        if speeds:
            print("  scoring rows/s by drop: " + ", ".join(f"{v:,.0f}" for v in speeds))
        cleaned = sum(d.cleaned for d in scored)
        if not args.keep_objects:
            print(f"  inputs and outputs deleted after the check: {cleaned} of {len(scored)}")
    for drop in drops:
        if drop not in scored:
            status = drop.report.get("status") if drop.report else "no report"
            detail = drop.error or (drop.report or {}).get("reason") or ""
            print(f"  NOT SCORED: {drop.key}: {status} {detail}".rstrip())
    for error in driver.cleanup_errors[:5]:
        print(f"  cleanup: {error}")

    # RSS.
    roles = {role: len(ids) for role, ids in sampler.role_processes.items()}
    figures = sorted(
        role_figures(sampler.samples, warmup=args.warmup, duration=duration, roles=roles),
        key=lambda f: _role_order(f.role),
    )
    total = role_figures(
        [dataclasses.replace(s, rss_kb={"total": sum(s.rss_kb.values())}) for s in sampler.samples],
        warmup=args.warmup,
        duration=duration,
        roles={"total": sum(roles.values())},
    )
    width = max([len(f.role) for f in figures] + [20]) + 2
    # The samples the start and end figures come from (the first one in the window, the last).
    start_t = next((s.t for s in sampler.samples if s.t >= args.warmup - 1), 0.0)
    last_t = sampler.samples[-1].t
    print(
        f"\nRSS by role, MB (start: {args.warmup:g} s into the load; end: load end at "
        f"{duration:g} s; slope: least squares over start..end; after: {args.cooldown:g} s later)"
    )
    print(
        f"{'role':<{width}}{'ready':>8}{'start':>8}{'end':>8}{'peak':>8}{'growth':>8}"
        f"{'MB/min':>8}{'after':>8}{'MB/min':>8}  note"
    )
    for figure in [*figures, *total]:
        notes = []
        if figure.processes > 1 and figure.role != "total":
            notes.append(f"{figure.processes} processes")
        if figure.first_t > start_t + 1:
            notes.append(f"from t={figure.first_t:.0f} s")
        if figure.last_t < last_t - 1:
            notes.append(f"gone after t={figure.last_t:.0f} s")
        if figure.role != "total" and not figure.flat:
            notes.append(f"GREW over {figure.bound:.0f} MB")
        if figure.climbs_after:
            notes.append("still climbing after the load")
        cells = [figure.ready_mb, figure.start_mb, figure.end_mb, figure.peak_mb]
        changes = [figure.growth, figure.slope]
        print(
            f"{figure.role:<{width}}{''.join(_mb(v) for v in cells)}"
            f"{''.join(_mb(v, signed=True) for v in changes)}"
            f"{_mb(figure.after_mb)}{_mb(figure.after_slope, signed=True)}  {', '.join(notes)}"
        )
    growing = [f.role for f in figures if not f.flat]
    climbing = [f.role for f in figures if f.climbs_after]
    bound = f"max({GROWTH_FRACTION:.0%} of its start, {GROWTH_FLOOR_MB:.0f} MB) from start to end"
    print(
        "\nverdict: "
        + (
            f"flat (every role grew by less than {bound})"
            if not growing
            else f"GROWING (grew by {bound} or more: {', '.join(growing)})"
        )
    )
    print(
        "after the load: "
        + ("nothing still climbing" if not climbing else "still climbing: " + ", ".join(climbing))
        + f" (more than {COOLDOWN_CLIMB_MB:g} MB over the {args.cooldown:g} s, rising)"
    )

    # loky.
    loky_now = [p for p in final_tree if is_loky(p)]
    print(
        f"\njoblib/loky processes seen during the run: {len(sampler.loky_seen)}; "
        f"still in the tree at the end: {len(loky_now)}"
    )
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    ticks = os.sysconf("SC_CLK_TCK")
    for proc in loky_now:
        age = uptime - proc.started / ticks
        print(
            f"  pid {proc.pid} (parent {proc.ppid}), {final_roles.get(proc, '?')}, "
            f"{proc.rss_kb / 1024:.1f} MB, up {age:.0f} s: {proc.command[:160]}"
        )

    # Stop.
    code, seconds = stop
    if code is None:
        print(f"\nstop: SIGINT, still running after {STOP_LIMIT_SECONDS:.0f} s: FAIL (killed)")
    else:
        verdict = "PASS" if seconds <= STOP_LIMIT_SECONDS else "FAIL"
        print(
            f"\nstop: SIGINT, exited with {code} in {seconds:.1f} s "
            f"(limit {STOP_LIMIT_SECONDS:.0f} s): {verdict}"
        )
    if left_behind:
        print(
            f"  left running {LEFT_BEHIND_GRACE:.0f} s after the stack exited (then ended "
            f"by this script): {len(left_behind)}"
        )
        for proc in left_behind:
            print(f"    pid {proc.pid}, {final_roles.get(proc, '?')}: {proc.command[:160]}")
    else:
        print(f"  no process of its tree left {LEFT_BEHIND_GRACE:.0f} s after it exited")
    sources = ", ".join(f"{s} {n:,}" for s, n in stack.lines_by_source.most_common(8))
    print(f"stack output: {sum(stack.lines_by_source.values()):,} log lines ({sources})")
    print(f"  lines that look like errors: {stack.error_lines:,}")
    for line in list(stack.errors)[:5]:
        print(f"    {line[:200]}")


if __name__ == "__main__":
    main()
