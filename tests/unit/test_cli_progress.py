"""Progress bars: percent, amounts and time left on a terminal; nothing through pipes or
with --json; the registry reports the bytes of a publish as they go."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest

from model_store.artifact import Artifact, sha256_hex
from model_store.cli import main
from model_store.cli.progress import Bar, wanted
from model_store.cli.score_cmd import LineIndex
from model_store.registry import open_registry
from tests.support.cli import CLI

FEATURES = "sepal_length,sepal_width,petal_length,petal_width"


class Terminal(io.StringIO):
    """Captured text that says it is a terminal, as stderr is when a person watches."""

    def isatty(self) -> bool:
        return True


def on_terminal(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """main() with stderr a terminal (stdout captured as usual)."""
    out, err = io.StringIO(), Terminal()
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def piped(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command with stdout and stderr pipes: no terminal anywhere."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def plain(text: str) -> str:
    """TEXT without its colours (the bar's figures are coloured apart)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def assert_no_bar(stderr: str) -> None:
    assert "\x1b" not in stderr
    assert "\r" not in stderr
    assert "ETA" not in stderr


# -- the adapter -------------------------------------------------------------------------


def test_a_bar_on_a_terminal_shows_percent_amount_and_time_left() -> None:
    terminal = Terminal()
    with Bar(
        "uploading", "bytes", total=2_000_000, show=wanted(False, terminal), stream=terminal
    ) as bar:
        bar.update(completed=500_000)
        bar.note("a line above the bar")
    shown = terminal.getvalue()
    shown = plain(shown)
    assert "uploading" in shown
    assert "25%" in shown
    assert "0.5/2.0 MB" in shown
    assert "ETA" in shown
    assert "a line above the bar\n" in shown


def test_a_bar_counts_fits_and_lines() -> None:
    terminal = Terminal()
    with Bar("grid search", "fits", show=True, stream=terminal) as bar:
        bar.update(total=40, description="[1/2] knn")
        bar.update(advance=30)
    shown = plain(terminal.getvalue())
    assert "[1/2] knn" in shown
    assert "75%" in shown
    assert "30/40 fits" in shown
    terminal = Terminal()
    with Bar("scoring x.csv", "lines", total=1000, show=True, stream=terminal) as bar:
        bar.finish(lines=12_345)
    assert "100%" in plain(terminal.getvalue())
    assert "12,345 lines read" in plain(terminal.getvalue())


def test_no_terminal_or_json_means_no_bar_and_plain_notes() -> None:
    terminal, pipe = Terminal(), io.StringIO()
    assert wanted(False, terminal)
    assert not wanted(True, terminal)
    assert not wanted(False, pipe)
    with Bar("uploading", "bytes", total=10, show=wanted(False, pipe), stream=pipe) as bar:
        bar.update(completed=5)
        bar.note("converting ...")
        bar.finish()
    assert pipe.getvalue() == "converting ...\n"


# -- the commands, as a person sees them and as a pipe gets them -------------------------


@pytest.fixture
def long_csv(tmp_path: Path) -> Path:
    path = tmp_path / "long.csv"
    path.write_text(FEATURES + "\n" + "5.1,3.5,1.4,0.2\n" * 120_000)
    return path


def test_score_shows_lines_bytes_and_percent_on_a_terminal(
    long_csv: Path, artifact_dir: Path, tmp_path: Path
) -> None:
    result = on_terminal(
        "score", str(long_csv), "--model", str(artifact_dir), "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    shown = plain(result.stderr)
    assert "scoring long.csv" in shown
    assert "100%" in shown
    assert "120,001 lines read" in shown
    assert "1.9/1.9 MB" in shown  # 1,920,045 bytes
    assert result.stdout.startswith("succeeded: ")


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
def test_score_through_pipes_or_as_json_shows_no_bar(
    long_csv: Path, artifact_dir: Path, tmp_path: Path
) -> None:
    args = ["score", str(long_csv), "--model", str(artifact_dir), "--out", str(tmp_path)]
    result = piped(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    as_json = on_terminal(*args, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.stderr == ""
    assert json.loads(as_json.stdout)["rows_in"] == 120_000


def test_train_shows_its_fits_on_a_terminal(tmp_path: Path) -> None:
    args = ["train", "--out", str(tmp_path / "a"), "--algorithms", "naive_bayes,decision_tree"]
    result = on_terminal(*args, "--cv", "2")
    assert result.returncode == 0, result.stderr
    shown = plain(result.stderr)
    assert "100%" in shown
    assert "16/16 fits" in shown  # (2 + 6 candidates) x 2 folds
    assert "[2/2] decision_tree" in shown
    assert "training on sklearn iris" in shown  # the notes, above the bar


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
def test_train_through_pipes_writes_plain_lines(tmp_path: Path) -> None:
    result = piped(
        "train", "--out", str(tmp_path / "a"), "--algorithms", "naive_bayes", "--cv", "2"
    )
    assert result.returncode == 0, result.stderr
    assert_no_bar(result.stderr)
    assert result.stderr.splitlines()[:2] == [
        "training on sklearn iris: 150 rows, 4 features, target 'species'",
        "[1/1] naive_bayes: 2 candidates x 2 folds",
    ]


def test_publish_shows_the_upload_on_a_terminal_and_nothing_through_pipes(
    tmp_path: Path, artifact_dir: Path
) -> None:
    env = {"MODEL_STORE_REGISTRY": str(tmp_path / "registry")}
    shown = on_terminal("publish", str(artifact_dir), "--version", "1", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "uploading" in shown.stderr
    assert "100%" in plain(shown.stderr)
    assert " kB" in plain(shown.stderr)
    quiet = piped("publish", str(artifact_dir), "--version", "2", env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""


# -- the registry's upload progress ------------------------------------------------------


def big(artifact: Artifact, size: int) -> Artifact:
    """ARTIFACT with SIZE bytes of model (not loadable; the registry only moves bytes)."""
    data = os.urandom(size)
    manifest = artifact.manifest.model_copy(update={"sha256": sha256_hex(data), "size_bytes": size})
    return Artifact(data, manifest, artifact.onnx_bytes)


@pytest.mark.parametrize("backend", ["directory", "s3"])
def test_publish_reports_the_bytes_sent(
    backend: str, tmp_path: Path, moto_endpoint: str, iris_artifact: Artifact
) -> None:
    if backend == "s3":
        bucket = f"models-{uuid.uuid4().hex[:12]}"
        client = boto3.client("s3", endpoint_url=moto_endpoint)
        client.create_bucket(Bucket=bucket)
        registry = open_registry(f"s3://{bucket}/r", s3_client=client)
    else:
        registry = open_registry(tmp_path / "registry")
    artifact = big(iris_artifact, 1_500_000)
    calls: list[tuple[int, int]] = []

    manifest = registry.publish(
        artifact, name="iris", version="1", progress=lambda sent, total: calls.append((sent, total))
    )

    total = 1_500_000 + len(artifact.onnx_bytes or b"") + len(manifest.to_json())
    assert {t for _, t in calls} == {total}
    assert calls[-1] == (total, total)
    assert [s for s, _ in calls] == sorted(s for s, _ in calls)
    if backend == "s3":  # as the bytes go, not file by file
        assert len(calls) > 4
    assert registry.read_model_bytes("iris", "1") == artifact.model_bytes


def test_the_line_index_maps_lines_read_to_bytes(tmp_path: Path) -> None:
    text = ("x" * 99 + "\n") * 30_000  # 3,000,000 bytes over three 1 MiB blocks
    plain_file, packed = tmp_path / "a.csv", tmp_path / "a.csv.gz"
    plain_file.write_text(text)
    packed.write_bytes(gzip.compress(text.encode()))
    for path in (plain_file, packed):  # a .gz file is counted as the engine reads it
        index = LineIndex.of(path)
        assert index is not None
        assert (index.total_lines, index.total_bytes) == (30_000, 3_000_000)
        assert index.bytes_at(0) == 0
        assert abs(index.bytes_at(10_000) - 1_000_000) <= 100  # within a line
        assert index.bytes_at(30_000) == index.bytes_at(99_999) == 3_000_000
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip")
    assert LineIndex.of(tmp_path / "bad.csv.gz") is None
