"""Sharded scoring of one very large CSV through `make local`, against one pass, side by side.

    .venv/bin/python bench/sharded_batch.py [--rows 2000000] [--shard-rows 100000]
        [--environments 4] [--interval 0.25] [--model-rows 100000000] [--log-dir DIR]

One iris-like CSV of ROWS rows (bench._support.write_iris_like_csv) is scored twice, each
time by a fresh `python -m devstack local --port 0 --s3-port 0 --state-dir TMP
--max-environments ENVIRONMENTS` (see bench/soak_local.py; its startup, with the seed
model's training, is not timed):

- single pass: --shard-above over the file's size, so the batch function scores it in one
  invocation;
- sharded: --shard-above 1 --shard-rows SHARD_ROWS, and ShardConcurrency = ENVIRONMENTS:
  the batch function hands the file to the state machine (moto's interpreter runs it),
  whose plan, Distributed Map of ShardScoreFunction children and merge write the outputs.

Each run puts the file under the trigger's prefix and times from the upload's completion
to its report's status being final (the sharded run's "running" report is replaced by
the merge's). Every INTERVAL s the stack's process tree is read (VmRSS, VmHWM, CPU time
by process, grouped by function); the emulator's REPORT lines give each invocation's
duration and the runtime's VmHWM after it, so a shard environment's peak can be followed
from its first shard to its last. The two runs' predictions and errors objects must be
byte-identical and the reports equal but for timings, execution and version ids.

The planner (model_store.batch.plan.plan_shards) is also timed in process on the file, and
the figures feed an on-paper model of a MODEL_ROWS-row file on AWS at the template's
defaults. The machine's CPUs bound the local sharded run: ENVIRONMENTS scorers share them
with moto and the stack, so its wall time shows the overhead, not AWS's parallel speed-up.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import write_iris_like_csv  # noqa: E402
from bench.soak_local import (  # noqa: E402
    S3_CONFIG,
    Proc,
    RoleNamer,
    StackProcess,
    end_processes,
    process_tree,
    read_proc,
)
from devstack.rie import Report  # noqa: E402
from model_store.batch.handover import DEFAULT_SHARD_BYTES as SHARD_BYTES  # noqa: E402
from model_store.batch.sinks import PART_SIZE  # noqa: E402

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FINAL = {"succeeded", "rejected", "failed"}
STOP_LIMIT_SECONDS = 60.0
LEFT_BEHIND_GRACE = 10.0
# Report fields that differ between two runs of the same file by design.
RUN_FIELDS = {"started_at", "duration_seconds", "rows_per_second", "execution"}
# events/env.json values that would override the template parameters these runs set.
ENV_FILE_OVERRIDES = {"SHARD_ROWS", "SHARD_CONCURRENCY", "SHARD_ABOVE_BYTES"}
# Shard children's peaks are "flat" when they spread by less than the larger of these.
FLAT_FRACTION = 0.10
FLAT_FLOOR_MB = 10.0
_TICKS = os.sysconf("SC_CLK_TCK")
_ROLE = re.compile(r"^(?P<kind>rie|runtime) (?P<function>[A-Za-z0-9]+)")

# -- the on-paper model's assumptions (us-east-1 list prices, x86) ----------------------
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1e6
SFN_TRANSITION = 0.025 / 1000  # Standard workflows
S3_GET = 0.0004 / 1000  # GET, HEAD (and SELECT) class
S3_PUT = 0.005 / 1000  # PUT, COPY, POST, LIST class
VCPU_MB = 1769  # Lambda gives one full vCPU at 1,769 MB, proportionally less below
PARENT_TRANSITIONS = 6  # start, Plan, Planned, ScoreShards, Merge, Done
CHILD_TRANSITIONS = 4  # per Standard child execution: start, ScoreShard, end, and one spare
MERGE_SECONDS_PER_PART = 2.0  # one UploadPartCopy of a ~200 MB part inside S3, assumed


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- what the stack logs ----------------------------------------------------------------


@dataclasses.dataclass
class Invocation:
    label: str  # the pool's environment, e.g. ShardScoreFunction#2
    started: float  # monotonic, when its START line arrived
    ended: float | None = None  # when its REPORT line arrived
    report: Report | None = None
    shard: int | None = None  # the shard a ShardScoreFunction invocation scored

    @property
    def function(self) -> str:
        return self.label.split("#", 1)[0]


class LogWatch(io.StringIO):
    """The stack's output as StackProcess writes it to its log: START, REPORT and a few
    of the handlers' lines, stamped with when they arrived (optionally kept in a file)."""

    def __init__(self, keep: Path | None = None) -> None:
        super().__init__()
        self.invocations: list[Invocation] = []
        self.planned_shards: int | None = None
        self._open: dict[str, Invocation] = {}
        self._lock = threading.Lock()
        self._keep = keep.open("w", encoding="utf-8") if keep is not None else None

    def write(self, text: str) -> int:
        keep = self._keep
        if keep is not None and not keep.closed:
            keep.write(text)
        for line in text.splitlines():
            self._line(line, time.monotonic())
        return len(text)

    def close(self) -> None:
        if self._keep is not None:
            self._keep.close()
        super().close()

    def _line(self, line: str, now: float) -> None:
        source, bar, text = line.partition("|")
        label, text = source.strip(), text.strip()
        if not bar or "Function#" not in label:
            return
        with self._lock:
            if text.startswith("START RequestId:"):
                self._open[label] = Invocation(label, now)
                self.invocations.append(self._open[label])
                return
            current = self._open.get(label)
            report = Report.parse(text)
            if report is not None and current is not None:
                current.ended, current.report = now, report
                del self._open[label]
            elif current is not None and text.startswith("{") and '"message":"' in text:
                with contextlib.suppress(ValueError):
                    document = json.loads(text)
                    message = document.get("message")
                    if message == "shard scored":
                        current.shard = int(document["index"])
                    elif message == "planned":
                        self.planned_shards = int(document["shards"])

    def of(self, function: str, since: float) -> list[Invocation]:
        with self._lock:
            return [i for i in self.invocations if i.function == function and i.started >= since]


# -- the process tree -------------------------------------------------------------------


@dataclasses.dataclass
class ProcStats:
    role: str  # as bench.soak_local names it: "runtime ShardScoreFunction#3", "moto", ...
    pid: int
    first_t: float
    last_t: float
    samples: int = 0
    peak_rss_kb: int = 0  # the largest VmRSS sampled
    hwm_kb: int = 0  # VmHWM at the last sample: the kernel's own peak
    cpu_first: float = 0.0  # user + system seconds at the first sample
    cpu_last: float = 0.0

    @property
    def function(self) -> str | None:
        match = _ROLE.match(self.role)
        return match["function"] if match else None

    @property
    def is_runtime(self) -> bool:
        return self.role.startswith("runtime ")


def _status_and_cpu(pid: int) -> tuple[int, float] | None:
    """(VmHWM in kB, user + system CPU seconds) of PID; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmHWM:"), 0)
    fields = stat[stat.rindex(")") + 2 :].split()
    return hwm, (int(fields[11]) + int(fields[12])) / _TICKS


class TreeSampler(threading.Thread):
    """Reads the stack's tree every INTERVAL s from ORIGIN on, until stopped."""

    def __init__(self, stack_pid: int, origin: float, interval: float) -> None:
        super().__init__(name="tree-sampler", daemon=True)
        self.stack_pid = stack_pid
        self.origin = origin
        self.interval = interval
        self.namer = RoleNamer(stack_pid)
        self.procs: dict[tuple[int, int], ProcStats] = {}
        self.samples = 0
        self._quit = threading.Event()

    def take(self) -> None:
        t = time.monotonic() - self.origin
        tree = process_tree(self.stack_pid)
        for proc, role in self.namer.roles(tree).items():
            extra = _status_and_cpu(proc.pid)
            if extra is None:
                continue
            hwm, cpu = extra
            stats = self.procs.get(proc.identity)
            if stats is None:
                stats = ProcStats(role, proc.pid, t, t, cpu_first=cpu)
                self.procs[proc.identity] = stats
            stats.last_t, stats.samples = t, stats.samples + 1
            stats.peak_rss_kb = max(stats.peak_rss_kb, proc.rss_kb)
            stats.hwm_kb, stats.cpu_last = hwm, cpu
        self.samples += 1

    def run(self) -> None:
        k = 1
        while not self._quit.wait(max(0.0, self.origin + k * self.interval - time.monotonic())):
            self.take()
            k += 1

    def stop(self) -> None:
        self._quit.set()
        self.join(timeout=30)
        self.take()  # a last look: what the final report's run left


# -- one run of the stack ----------------------------------------------------------------


@dataclasses.dataclass
class RunResult:
    mode: str  # "single pass" or "sharded"
    ready_s: float
    wall_s: float  # from the upload's completion to a final report
    running_s: float | None  # when a "running" report was first seen
    report: dict[str, Any]
    outputs: dict[str, Path | None]  # predictions, errors: downloaded copies
    invocations: dict[str, list[Invocation]]  # by function, from the upload on
    procs: list[ProcStats]
    planned_shards: int | None
    origin: float  # monotonic time of the upload's completion
    error_lines: list[str]
    stop_code: int | None
    stop_s: float
    left_behind: list[Proc]

    def function_procs(self, function: str) -> list[ProcStats]:
        return [p for p in self.procs if p.is_runtime and p.function == function]


def env_file_copy(directory: Path) -> tuple[Path, list[str]]:
    """events/env.json without the values that would override the template parameters
    this bench sets (--shard-rows, ShardConcurrency); what was dropped."""
    document: dict[str, dict[str, str]] = json.loads((ROOT / "events" / "env.json").read_text())
    dropped = []
    for scope, values in document.items():
        for name in sorted(ENV_FILE_OVERRIDES & set(values)):
            dropped.append(f"{scope}.{name}={values.pop(name)}")
    path = directory / "env.json"
    path.write_text(json.dumps(document, indent=2))
    return path, dropped


def run_stack(
    mode: str,
    csv_path: Path,
    key: str,
    options: list[str],
    *,
    work: Path,
    env_file: Path,
    args: argparse.Namespace,
) -> RunResult:
    state = work / "state"
    command = [sys.executable, "-m", "devstack", "local", "--port", "0", "--s3-port", "0"]
    command += ["--state-dir", str(state), "--max-environments", str(args.environments)]
    command += ["--env-vars", str(env_file), *options]
    env = dict(os.environ, NO_COLOR="1", PYTHONUNBUFFERED="1")
    env.pop("AWS_PROFILE", None)
    log_path = args.log_dir / f"{mode.replace(' ', '-')}.log" if args.log_dir else None
    watch = LogWatch(log_path)
    _say(f"[{mode}] starting: {' '.join(command[2:])}")
    started = time.monotonic()
    stack = StackProcess(command, env, watch)
    tree: list[Proc] = []
    sampler: TreeSampler | None = None
    try:
        stack.wait_ready(args.startup_timeout)
        ready_s = time.monotonic() - started
        _say(f"[{mode}] ready in {ready_s:.0f} s (pid {stack.pid}); not timed")
        s3 = _s3_client(stack)
        bucket = stack.banner["data_bucket"]
        object_key = stack.banner.get("prefix", "") + key
        body = csv_path.read_bytes()
        sampler = TreeSampler(stack.pid, time.monotonic(), args.interval)
        sampler.take()
        s3.put_object(Bucket=bucket, Key=object_key, Body=body, ContentType="text/csv")
        origin = time.monotonic()
        del body
        sampler.origin = origin
        sampler.start()
        report, wall_s, running_s = _await_report(s3, bucket, key, origin, args, mode)
        sampler.stop()
        outputs = _download_outputs(s3, report, work, mode)
        tree = process_tree(stack.pid)
    finally:
        if sampler is not None and sampler.is_alive():  # only on an error
            sampler.stop()
        code, stop_s, left = _stop(stack, tree)
        watch.close()
    invocations = {
        function: watch.of(function, origin)
        for function in sorted({i.function for i in watch.invocations})
    }
    return RunResult(
        mode=mode,
        ready_s=ready_s,
        wall_s=wall_s,
        running_s=running_s,
        report=report,
        outputs=outputs,
        invocations=invocations,
        procs=list(sampler.procs.values()) if sampler else [],
        planned_shards=watch.planned_shards,
        origin=origin,
        error_lines=list(stack.errors),
        stop_code=code,
        stop_s=stop_s,
        left_behind=left,
    )


def _s3_client(stack: StackProcess) -> S3Client:
    aws = stack.aws_env
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=aws.get("AWS_ENDPOINT_URL", stack.banner["s3_endpoint"]),
        region_name=aws.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id=aws.get("AWS_ACCESS_KEY_ID", "local"),
        aws_secret_access_key=aws.get("AWS_SECRET_ACCESS_KEY", "local"),
        config=S3_CONFIG,
    )
    return client


def _await_report(
    s3: S3Client, bucket: str, key: str, origin: float, args: argparse.Namespace, mode: str
) -> tuple[dict[str, Any], float, float | None]:
    """Poll reports/<key>.json every INTERVAL s: (the final report, seconds, when a
    running report was first seen)."""
    report_key = "reports/" + key.removesuffix(".csv") + ".json"
    running_s: float | None = None
    said = origin
    while True:
        now = time.monotonic() - origin
        try:
            report: dict[str, Any] = json.loads(
                s3.get_object(Bucket=bucket, Key=report_key)["Body"].read()
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {"NoSuchKey", "404"}:
                raise
            report = {}
        status = report.get("status")
        if status == "running" and running_s is None:
            running_s = now
        if status in FINAL:
            _say(f"[{mode}] report {status} after {now:.1f} s")
            return report, now, running_s
        if now > args.report_timeout:
            raise SystemExit(f"[{mode}] no final report after {args.report_timeout:.0f} s")
        if time.monotonic() - said > 15:
            said = time.monotonic()
            _say(f"[{mode}] t={now:.0f} s, report: {status or 'none yet'}")
        time.sleep(args.interval)


def _download_outputs(
    s3: S3Client, report: dict[str, Any], work: Path, mode: str
) -> dict[str, Path | None]:
    """The run's predictions and errors objects, copied to WORK (the stack's S3 goes
    with it); None for one the report does not name or S3 does not have."""
    copies: dict[str, Path | None] = {}
    for kind in ("predictions", "errors"):
        location = (report.get("outputs") or {}).get(kind)
        copies[kind] = None
        if not location:
            continue
        bucket, _, key = str(location).removeprefix("s3://").partition("/")
        target = work / f"{kind}.csv"
        try:
            s3.download_file(bucket, key, str(target))
        except ClientError as exc:
            _say(f"[{mode}] {location}: {exc}")
            continue
        copies[kind] = target
    return copies


def _stop(stack: StackProcess, tree: list[Proc]) -> tuple[int | None, float, list[Proc]]:
    """SIGINT, as Ctrl-C; SIGKILL if it does not exit in time; then end whatever of its
    tree outlived it by LEFT_BEHIND_GRACE s (those are returned)."""
    tree = tree or process_tree(stack.pid)
    _say("stopping the stack (SIGINT) ...")
    code, seconds = stack.interrupt(STOP_LIMIT_SECONDS)
    if code is None:
        stack.kill()
    others = [p for p in tree if p.pid != stack.pid]
    deadline = time.monotonic() + LEFT_BEHIND_GRACE
    while time.monotonic() < deadline and any(_alive(p) for p in others):
        time.sleep(0.2)
    return code, seconds, end_processes(others)


def _alive(proc: Proc) -> bool:
    now = read_proc(proc.pid)
    return now is not None and now.started == proc.started


# -- checks -------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while block := data.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def first_difference(a: Path, b: Path) -> str:
    with a.open("rb") as left, b.open("rb") as right:
        for number, (x, y) in enumerate(zip(left, right, strict=False), start=1):
            if x != y:
                return f"line {number}: {x[:120]!r} != {y[:120]!r}"
    return f"one is a prefix of the other ({a.stat().st_size:,} vs {b.stat().st_size:,} bytes)"


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what differs by design between two runs of the same file."""
    kept = {k: v for k, v in report.items() if k not in RUN_FIELDS}
    kept["source"] = {k: v for k, v in (report.get("source") or {}).items() if k != "version_id"}
    return kept


def differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for name in sorted(set(a) | set(b)):
            yield from differences(a.get(name), b.get(name), f"{path}.{name}")
    elif a != b:
        yield f"{path or '.'}: {a!r} != {b!r}"


def compare(single: RunResult, sharded: RunResult) -> list[str]:
    """What breaks the product's promise: the same objects and report either way."""
    problems = []
    for kind in ("predictions", "errors"):
        a, b = single.outputs[kind], sharded.outputs[kind]
        if a is None or b is None:
            if a is not b:
                problems.append(f"{kind}: written by one run only ({a} / {b})")
        elif sha256(a) != sha256(b):
            problems.append(f"{kind} objects differ: {first_difference(a, b)}")
    problems += [
        f"report {d}" for d in differences(comparable(single.report), comparable(sharded.report))
    ]
    return problems


# -- the planner in process -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlannerSpeed:
    seconds: float  # best of the repeats
    size: int
    lines: int
    shards: int

    @property
    def mb_per_s(self) -> float:
        return self.size / 1e6 / self.seconds


def time_planner(path: Path, shard_lines: int, repeats: int = 3) -> PlannerSpeed:
    from model_store.batch import DEFAULT_CHUNK_ROWS
    from model_store.batch.plan import Plan, plan_shards

    best = math.inf
    planned: Plan | None = None
    for _ in range(repeats):
        with path.open("rb", buffering=0) as raw:
            started = time.perf_counter()
            # Cut where the scorer's chunks end, as the plan step does (CHUNK_ROWS default).
            result = plan_shards(raw, shard_lines=shard_lines, align_lines=DEFAULT_CHUNK_ROWS)
            best = min(best, time.perf_counter() - started)
        if not isinstance(result, Plan):
            raise SystemExit(f"the planner refused the file: {result.reason}")
        planned = result
    assert planned is not None
    return PlannerSpeed(best, planned.size, planned.lines, len(planned.shards))


# -- the template's figures ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TemplateFigures:
    shard_rows: int
    shard_concurrency: int
    batch_memory_mb: int
    batch_timeout_s: int
    shard_above_bytes: int
    plan_memory_mb: int
    merge_memory_mb: int


def template_figures() -> TemplateFigures:
    from samcli.yamlhelper import yaml_parse

    document = yaml_parse((ROOT / "template.yaml").read_text())
    parameters = document["Parameters"]
    resources = document["Resources"]

    def default(name: str) -> int:
        return int(parameters[name]["Default"])

    def memory(function: str) -> int:
        value = resources[function]["Properties"]["MemorySize"]
        return int(value) if not isinstance(value, dict) else default(value["Ref"])

    return TemplateFigures(
        shard_rows=default("ShardRows"),
        shard_concurrency=default("ShardConcurrency"),
        batch_memory_mb=memory("ShardScoreFunction"),
        batch_timeout_s=default("BatchTimeoutSeconds"),
        shard_above_bytes=default("ShardAboveBytes"),
        plan_memory_mb=memory("ShardPlanFunction"),
        merge_memory_mb=memory("ShardMergeFunction"),
    )


# -- the figures ----------------------------------------------------------------------------


def _mb(kb: float) -> str:
    return f"{kb / 1024:,.1f}"


def _durations(invocations: list[Invocation]) -> list[float]:
    return [i.report.duration_ms / 1e3 for i in invocations if i.report is not None]


def _span(invocations: list[Invocation], origin: float) -> str:
    ends = [i.ended for i in invocations if i.ended is not None]
    if not invocations or not ends:
        return "-"
    return f"t={invocations[0].started - origin:.1f}..{max(ends) - origin:.1f} s"


def print_run(run: RunResult) -> None:
    report = run.report
    rows = int(report.get("rows_in") or 0)
    print(
        f"\n{run.mode}: report {report.get('status')} after {run.wall_s:.1f} s "
        f"({rows / run.wall_s:,.0f} rows/s end to end; the report says "
        f"{float(report.get('duration_seconds') or 0):.1f} s, "
        f"{float(report.get('rows_per_second') or 0):,.0f} rows/s)"
        + (f"; 'running' report seen at {run.running_s:.1f} s" if run.running_s is not None else "")
    )
    print(f"  {'function':<22}{'calls':>6}{'Duration s (min/med/max)':>28}{'init s':>8}  when")
    for function, calls in run.invocations.items():
        durations = _durations(calls)
        inits = [i.report.init_ms / 1e3 for i in calls if i.report and i.report.init_ms]
        spread = (
            f"{min(durations):.1f} / {statistics.median(durations):.1f} / {max(durations):.1f}"
            if durations
            else "-"
        )
        print(
            f"  {function:<22}{len(calls):>6}{spread:>28}"
            f"{(f'{sum(inits):.1f}' if inits else '-'):>8}  {_span(calls, run.origin)}"
        )
    print(f"  {'process':<34}{'peak RSS MB':>12}{'VmHWM MB':>10}{'CPU s':>8}{'samples':>9}")
    for stats in sorted(run.procs, key=lambda p: (not p.is_runtime, p.role)):
        if stats.is_runtime or stats.role == "devstack" or _is_moto(stats):
            print(
                f"  {stats.role:<34}{_mb(stats.peak_rss_kb):>12}{_mb(stats.hwm_kb):>10}"
                f"{stats.cpu_last - stats.cpu_first:>8.1f}{stats.samples:>9}"
            )
    if run.error_lines:
        print(f"  stack lines that look like errors: {len(run.error_lines)}")
        for line in run.error_lines[:5]:
            print(f"    {line[:200]}")
    stop = "killed" if run.stop_code is None else f"exit {run.stop_code} in {run.stop_s:.1f} s"
    left = f"; {len(run.left_behind)} processes outlived it (ended)" if run.left_behind else ""
    print(f"  stop: SIGINT, {stop}{left}")


def _is_moto(stats: ProcStats) -> bool:
    # devstack runs moto as `python -m devstack.moto_server`.
    return "moto" in stats.role


def _cpu(run: RunResult, which: str) -> float:
    procs = [p for p in run.procs if (_is_moto(p) if which == "moto" else p.function == which)]
    return sum(p.cpu_last - p.cpu_first for p in procs if p.is_runtime or which == "moto")


def shard_environments(run: RunResult) -> list[str]:
    """Per shard environment: the shards it scored, in order, and the runtime's VmHWM
    after each (the REPORT's Max Memory Used): flat if the first shard's peak holds."""
    lines = []
    by_label: dict[str, list[Invocation]] = collections.defaultdict(list)
    for call in run.invocations.get("ShardScoreFunction", []):
        by_label[call.label].append(call)
    for label, calls in sorted(by_label.items()):
        peaks = [c.report.max_memory_mb for c in calls if c.report and c.report.max_memory_mb]
        shards = ", ".join(str(c.shard) for c in calls)
        growth = f"{peaks[-1] - peaks[0]:+d} MB first to last" if peaks else "-"
        lines.append(
            f"  {label:<22} shards {shards}; VmHWM after each: "
            f"{', '.join(str(p) for p in peaks)} MB ({growth})"
        )
    return lines


def print_summary(
    single: RunResult, sharded: RunResult, args: argparse.Namespace, size: int
) -> None:
    shard_procs = sharded.function_procs("ShardScoreFunction")
    single_procs = single.function_procs("BatchScoringFunction")
    peaks = [p.hwm_kb for p in shard_procs]
    single_peak = max((p.hwm_kb for p in single_procs), default=0)
    shards = sharded.planned_shards
    plan = _durations(sharded.invocations.get("ShardPlanFunction", []))
    merge = _durations(sharded.invocations.get("ShardMergeFunction", []))
    scored = _durations(sharded.invocations.get("ShardScoreFunction", []))
    cpus = os.cpu_count() or 1
    shard_cpu = _cpu(sharded, "ShardScoreFunction")
    single_cpu = _cpu(single, "BatchScoringFunction")
    print("\nsummary")
    failed = [r for r in (single, sharded) if r.report.get("status") != "succeeded"]
    for run in failed:
        print(
            f"  !!! the {run.mode} run did not succeed: {run.report.get('status')}: "
            f"{run.report.get('reason')}"
        )
    ratio = f"{sharded.wall_s / single.wall_s:.2f}x" if not failed else "n/a (a run failed)"
    table = [
        ("rows, file", f"{args.rows:,} rows, {size / 1e6:,.1f} MB"),
        ("single pass, wall s", f"{single.wall_s:.1f}"),
        ("sharded, wall s", f"{sharded.wall_s:.1f}"),
        ("ratio sharded / single", ratio),
        ("shards (plan) / shard calls", f"{shards} / {len(scored)}"),
        (
            "peak RSS per shard child, MB",
            f"min {_mb(min(peaks))} / max {_mb(max(peaks))} over {len(peaks)} processes"
            if peaks
            else "-",
        ),
        ("peak RSS single-pass process, MB", _mb(single_peak)),
        ("plan, merge: Duration s", f"{sum(plan):.1f}, {sum(merge):.1f}"),
        (
            "shard Duration s (min/med/max)",
            f"{min(scored):.1f} / {statistics.median(scored):.1f} / {max(scored):.1f}"
            if scored
            else "-",
        ),
        ("scorer CPU s: shards / single", f"{shard_cpu:.1f} / {single_cpu:.1f}"),
        (
            "moto CPU s: sharded / single",
            f"{_cpu(sharded, 'moto'):.1f} / {_cpu(single, 'moto'):.1f}",
        ),
    ]
    width = max(len(name) for name, _ in table) + 2
    for name, value in table:
        print(f"  {name:<{width}}{value}")
    print(
        f"  note: {args.environments} environments scoring at once share this machine's {cpus} "
        "CPUs with moto and the stack: the sharded wall time shows sharding's overhead here, "
        "not the parallel speed-up AWS gives (one ~1.2 vCPU sandbox per shard)."
    )
    expected = math.ceil(args.rows / args.shard_rows)
    if shards != expected:
        print(f"  WARNING: the plan made {shards} shards; {expected} expected")
    print("per shard environment:")
    for line in shard_environments(sharded):
        print(line)
    if peaks:
        spread = (max(peaks) - min(peaks)) / 1024
        bound = max(FLAT_FRACTION * max(peaks) / 1024, FLAT_FLOOR_MB)
        verdict = "flat" if spread < bound else "NOT FLAT"
        print(
            f"shard children's peaks: {verdict} (spread {spread:.1f} MB across "
            f"{len(peaks)} processes; bound max({FLAT_FRACTION:.0%}, {FLAT_FLOOR_MB:g} MB))"
        )


def print_model(
    single: RunResult,
    sharded: RunResult,
    planner: PlannerSpeed,
    figures: TemplateFigures,
    args: argparse.Namespace,
    size: int,
) -> None:
    """A MODEL_ROWS-row file of these rows on AWS at the template's defaults, on paper."""
    rows = args.model_rows
    per_row = size / args.rows
    predictions = single.outputs["predictions"]
    out_per_row = predictions.stat().st_size / args.rows if predictions else per_row
    speed = float(single.report.get("rows_per_second") or 0) or args.rows / single.wall_s
    gb = figures.batch_memory_mb / 1024
    plan_gb, merge_gb = figures.plan_memory_mb / 1024, figures.merge_memory_mb / 1024
    byte_rows = int(SHARD_BYTES / per_row)
    shard_rows = min(figures.shard_rows, byte_rows)
    shards = math.ceil(rows / shard_rows)
    concurrency = min(figures.shard_concurrency, shards)
    waves = math.ceil(shards / concurrency)
    shard_s = shard_rows / speed
    # The single pass's cold start: the same code and layers, with no other cold start
    # competing for this machine's CPUs (the shards' four at once were slower).
    init_s = statistics.median(
        [
            i.report.init_ms / 1e3
            for i in single.invocations.get("BatchScoringFunction", [])
            if i.report and i.report.init_ms
        ]
        or [1.0]
    )
    cpu_share = min(1.0, figures.plan_memory_mb / VCPU_MB)
    plan_s = rows * per_row / (planner.size / planner.seconds * cpu_share)
    handoff_s = statistics.median(
        _durations(sharded.invocations.get("BatchScoringFunction", [])) or [1.0]
    )
    merge_s = shards * MERGE_SECONDS_PER_PART
    wall_s = handoff_s + plan_s + init_s + waves * shard_s + merge_s
    parts_per_shard = math.ceil(shard_rows * out_per_row / PART_SIZE)

    gb_s = {
        "scorer": shards * shard_s * gb + concurrency * init_s * gb,
        "plan": plan_s * plan_gb,
        "merge": merge_s * merge_gb,
        "hand-off": handoff_s * gb,
    }
    requests = shards + 3
    transitions = PARENT_TRANSITIONS + shards * CHILD_TRANSITIONS
    # S3 requests, counted from the code: GET class (GET, HEAD), PUT class (PUT, POST,
    # COPY, LIST; DeleteObjects counted here too).
    gets = 3 + 1 + 1 + (2 * shards - 1) + 3 * concurrency + 3 * shards
    puts = (
        1  # running report
        + 1  # plan.json
        + shards * (parts_per_shard + 2 + 1 + 1)  # predictions part upload, errors, tally
        + (shards + 2)
        + 1
        + 1  # merged predictions (copies), errors, report
        + 1
        + math.ceil((3 * shards + 1) / 1000)  # LIST and DeleteObjects of staging
    )
    cost = {
        "Lambda GB-s": sum(gb_s.values()) * LAMBDA_GB_SECOND,
        "Lambda requests": requests * LAMBDA_REQUEST,
        "Step Functions transitions": transitions * SFN_TRANSITION,
        "S3 requests": gets * S3_GET + puts * S3_PUT,
    }
    total = sum(cost.values())

    # One pass of a file that fits: the engine's time, one request, a few S3 calls.
    single_rows = int(figures.shard_above_bytes / per_row)
    single_s = single_rows / speed
    single_puts = 2 + math.ceil(single_rows * out_per_row / PART_SIZE) + 2
    single_cost = {
        "Lambda GB-s": (single_s + init_s) * gb * LAMBDA_GB_SECOND,
        "Lambda requests": LAMBDA_REQUEST,
        "Step Functions transitions": 0.0,
        "S3 requests": 7 * S3_GET + single_puts * S3_PUT,
    }
    single_total = sum(single_cost.values())
    relative = (total / rows) / (single_total / single_rows)

    print(f"\non paper: {rows:,} rows of this file's kind on AWS at the template's defaults")
    lines = [
        f"file: {per_row:.1f} bytes/row -> {rows * per_row / 1e9:.2f} GB; predictions "
        f"{out_per_row:.1f} bytes/row",
        f"measured here: one process scores {speed:,.0f} rows/s (the single pass's report); the "
        f"planner reads {planner.mb_per_s:,.0f} MB/s in process ({planner.lines:,} lines in "
        f"{planner.seconds:.2f} s); a cold start {init_s:.1f} s (the single pass's)",
        f"shards: ShardRows {figures.shard_rows:,} (512 MiB a shard allows {byte_rows:,} rows) "
        f"-> {shards} shards of {shard_rows:,} rows; ShardConcurrency "
        f"{figures.shard_concurrency} -> {waves} waves of {concurrency}",
        f"time per shard: {shard_rows:,} / {speed:,.0f} = {shard_s:.1f} s at "
        f"{figures.batch_memory_mb} MB (~{figures.batch_memory_mb / VCPU_MB:.2f} vCPU: "
        f"one busy core, assumed as fast as this machine's; limit {figures.batch_timeout_s} s)",
        f"plan: {rows * per_row / 1e6:,.0f} MB at {planner.mb_per_s * cpu_share:,.0f} MB/s "
        f"(this machine's speed x {cpu_share:.2f} vCPU at {figures.plan_memory_mb} MB) = "
        f"{plan_s:.0f} s (one S3 GET stream gives ~50-100 MB/s: the bound may be that)",
        f"merge: {shards} part copies x {MERGE_SECONDS_PER_PART:.0f} s (assumed) = "
        f"{merge_s:.0f} s; hand-off {handoff_s:.1f} s",
        f"wall: {handoff_s:.1f} + {plan_s:.0f} + {init_s:.1f} + {waves} x {shard_s:.1f} + "
        f"{merge_s:.0f} = {wall_s:.0f} s ({wall_s / 60:.1f} min), Step Functions' own latency "
        "not counted",
        "Lambda GB-s: "
        + ", ".join(f"{name} {value:,.0f}" for name, value in gb_s.items())
        + f"; {requests} requests",
        f"Step Functions: {PARENT_TRANSITIONS} + {shards} x {CHILD_TRANSITIONS} = "
        f"{transitions} transitions; S3: ~{gets} GET-class, ~{puts} PUT-class requests",
        "cost per file: "
        + ", ".join(f"{name} ${value:.4f}" for name, value in cost.items())
        + f" = ${total:.4f}",
        f"cost per million rows, sharded: ${total / rows * 1e6:.5f}; one pass of a file "
        f"at ShardAboveBytes ({single_rows:,} rows, {single_s:.0f} s): "
        f"${single_total / single_rows * 1e6:.5f} ({relative:.2f}x)",
    ]
    for line in lines:
        print(f"  {line}")


# -- the run ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in the CSV")
    parser.add_argument("--shard-rows", type=int, default=100_000, help="lines per shard")
    parser.add_argument(
        "--environments", type=int, default=4, help="--max-environments of each stack"
    )
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between samples")
    parser.add_argument(
        "--model-rows", type=int, default=100_000_000, help="rows of the on-paper AWS file"
    )
    parser.add_argument("--report-timeout", type=float, default=1800.0, help="per run, seconds")
    parser.add_argument("--startup-timeout", type=float, default=900.0, help="build, training")
    parser.add_argument("--log-dir", type=Path, help="write each stack's whole output here")
    args = parser.parse_args()
    if min(args.rows, args.shard_rows, args.environments, args.model_rows) < 1:
        parser.error("--rows, --shard-rows, --environments and --model-rows must be positive")
    if args.interval <= 0:
        parser.error("--interval must be positive")
    if args.log_dir:
        args.log_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="sharded-batch-") as tmp_name:
        tmp = Path(tmp_name)
        csv_path = write_iris_like_csv(tmp / "iris.csv", args.rows, seed=11)
        size = csv_path.stat().st_size
        _say(f"wrote {args.rows:,} rows, {size / 1e6:,.1f} MB")
        env_file, dropped = env_file_copy(tmp)
        if dropped:
            _say(
                "events/env.json overrides template parameters this bench sets; its copy "
                f"leaves out {', '.join(dropped)}"
            )
        key = f"sharded-bench/iris-{args.rows}.csv"
        runs = []
        for mode, options in (
            ("single pass", ["--shard-above", str(size + 1)]),
            (
                "sharded",
                [
                    "--shard-above",
                    "1",
                    "--shard-rows",
                    str(args.shard_rows),
                    "--parameter-overrides",
                    f"ShardConcurrency={args.environments}",
                ],
            ),
        ):
            work = tmp / mode.replace(" ", "-")
            work.mkdir()
            runs.append(
                run_stack(mode, csv_path, key, options, work=work, env_file=env_file, args=args)
            )
        single, sharded = runs
        _say("timing the planner in process ...")
        planner = time_planner(csv_path, args.shard_rows)
        figures = template_figures()

        print(
            f"sharded_batch: {args.rows:,} rows, shards of {args.shard_rows:,} lines, "
            f"{args.environments} environments per function, {os.cpu_count()} CPUs; RSS every "
            f"{args.interval:g} s; stacks ready in {single.ready_s:.0f} / {sharded.ready_s:.0f} s "
            "(not timed)"
        )
        if dropped:
            print(f"  events/env.json's {', '.join(dropped)} left out (they override the options)")
        for run in runs:
            print_run(run)
        print_summary(single, sharded, args, size)
        print(
            f"\nplanner in process: {planner.size / 1e6:,.1f} MB, {planner.lines:,} lines, "
            f"{planner.shards} shards in {planner.seconds:.2f} s ({planner.mb_per_s:,.0f} MB/s, "
            f"{planner.lines / planner.seconds:,.0f} lines/s; best of 3)"
        )
        problems = compare(single, sharded)
        if problems:
            print("\n!!! MISMATCH: the sharded run's outputs are not the single pass's !!!")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(
                "\nsame outputs: predictions and errors byte-identical, reports equal but for "
                "timings, execution and version ids"
            )
        print_model(single, sharded, planner, figures, args, size)
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
