"""Assembling part objects into one: the plan's invariants for any sizes (hypothesis, with
small limits), hand-checked plans, and the executor against moto (which enforces the
real 5 MiB minimum for every part but the last, so those tests use real sizes)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_store.batch.assemble import (
    S3_LIMITS,
    CopiedPart,
    DownloadedPart,
    GiB,
    MiB,
    Part,
    PartLimits,
    Span,
    TooManyPartsError,
    assemble,
    plan_parts,
)
from model_store.exceptions import DataBucketError
from tests.support.s3 import keys_under, pending_uploads

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SMALL = PartLimits(min_part=5, max_part=17, max_parts=1_000_000)


def copy(key: str, start: int, stop: int) -> CopiedPart:
    return CopiedPart(Span(key, start, stop))


def download(*spans: tuple[str, int, int]) -> DownloadedPart:
    return DownloadedPart(tuple(Span(*span) for span in spans))


def byte_origins(parts: list[Part]) -> list[tuple[str, int]]:
    """(key, offset) of every byte the plan writes, in order."""
    spans = [s for p in parts for s in ((p.span,) if isinstance(p, CopiedPart) else p.spans)]
    return [(s.key, i) for s in spans for i in range(s.start, s.stop)]


def check_plan(sources: list[tuple[str, int]], parts: list[Part], limits: PartLimits) -> None:
    expected = [(key, i) for key, size in sources for i in range(size)]
    assert byte_origins(parts) == expected
    sizes = [part.size for part in parts]
    assert all(size >= limits.min_part for size in sizes[:-1])
    assert all(0 < size <= limits.max_part for size in sizes)
    assert len(parts) <= limits.max_parts
    for part in parts:
        if isinstance(part, DownloadedPart):
            assert part.spans
            assert all(span.size > 0 for span in part.spans)
    if 0 < sum(size for _, size in sources) < limits.min_part:
        assert len(parts) == 1
        assert isinstance(parts[0], DownloadedPart)


def downloaded_bytes(parts: list[Part], key: str) -> int:
    return sum(
        span.size
        for part in parts
        if isinstance(part, DownloadedPart)
        for span in part.spans
        if span.key == key
    )


sizes_lists = st.lists(
    st.one_of(st.integers(0, 6), st.integers(0, 80)),  # plenty of small and empty ones
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(sizes=sizes_lists)
def test_any_plan_concatenates_the_sources_in_parts_s3_accepts(sizes: list[int]) -> None:
    sources = [(f"{i:05d}.csv", size) for i, size in enumerate(sizes)]
    parts = plan_parts(sources, SMALL)
    check_plan(sources, parts, SMALL)
    for key, size in sources:
        got = downloaded_bytes(parts, key)
        if size < SMALL.min_part:
            assert got == size  # small sources are never copied
        else:
            # A big source tops a buffer up (under min_part), or joins it whole when it is
            # too short to leave a copyable rest (so under 2 * min_part).
            assert got < SMALL.min_part or (got == size < 2 * SMALL.min_part)


@settings(max_examples=100, deadline=None)
@given(sizes=sizes_lists, max_parts=st.integers(1, 12))
def test_a_plan_over_max_parts_is_refused(sizes: list[int], max_parts: int) -> None:
    sources = [(f"{i:05d}.csv", size) for i, size in enumerate(sizes)]
    unbounded = plan_parts(sources, SMALL)
    limits = PartLimits(min_part=5, max_part=17, max_parts=max_parts)
    if len(unbounded) > max_parts:
        with pytest.raises(TooManyPartsError):
            plan_parts(sources, limits)
    else:
        assert plan_parts(sources, limits) == unbounded


# -- plans by hand (min_part 5, max_part 17) ----------------------------------------------


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        pytest.param([], [], id="nothing"),
        pytest.param([("a", 0), ("b", 0)], [], id="only empty sources"),
        pytest.param(
            [("a", 1), ("b", 2), ("c", 0), ("d", 1)],
            [download(("a", 0, 1), ("b", 0, 2), ("d", 0, 1))],
            id="all small: one put",
        ),
        pytest.param([("a", 12)], [copy("a", 0, 12)], id="one big: a copy"),
        pytest.param(
            [("a", 35)],
            [copy("a", 0, 12), copy("a", 12, 24), copy("a", 24, 35)],
            id="over max_part: even copies",
        ),
        pytest.param(
            [("a", 2), ("b", 30), ("c", 1)],
            [
                download(("a", 0, 2), ("b", 0, 3)),
                copy("b", 3, 17),
                copy("b", 17, 30),
                download(("c", 0, 1)),
            ],
            id="small+big+small: topped up, rest copied",
        ),
        pytest.param(
            [("a", 2), ("b", 7), ("c", 3), ("d", 9)],
            [
                download(("a", 0, 2), ("b", 0, 7)),
                download(("c", 0, 3), ("d", 0, 2)),
                copy("d", 2, 9),
            ],
            id="big with a rest under min_part joins the buffer",
        ),
        pytest.param(
            [("a", 2), ("b", 7)],
            [download(("a", 0, 2), ("b", 0, 3)), copy("b", 3, 7)],
            id="last big: its short rest is copied as the last part",
        ),
        pytest.param(
            [("a", 3), ("b", 1), ("c", 4), ("d", 6)],
            [download(("a", 0, 3), ("b", 0, 1), ("c", 0, 4)), copy("d", 0, 6)],
            id="a full buffer is flushed, the next big one copied whole",
        ),
    ],
)
def test_plans_by_hand(sources: list[tuple[str, int]], expected: list[Part]) -> None:
    parts = plan_parts(sources, SMALL)
    assert parts == expected
    check_plan(sources, parts, SMALL)


def test_a_kilobyte_before_a_gigabyte_downloads_only_the_top_up() -> None:
    parts = plan_parts([("a", 1024), ("b", GiB)])
    assert parts == [
        download(("a", 0, 1024), ("b", 0, 5 * MiB - 1024)),
        copy("b", 5 * MiB - 1024, GiB),
    ]


def test_a_source_over_five_gib_is_copied_in_pieces() -> None:
    parts = plan_parts([("a", 12 * GiB)])
    assert [part.size for part in parts] == [4 * GiB] * 3
    assert all(isinstance(part, CopiedPart) for part in parts)


def test_too_many_parts_are_refused_naming_the_limits() -> None:
    limits = PartLimits(min_part=5, max_part=10, max_parts=3)
    with pytest.raises(TooManyPartsError, match=r"needs 4 parts.*at most 3 parts of at most 10"):
        plan_parts([("a", 31)], limits)


def test_limits_that_cannot_always_be_met_are_refused() -> None:
    with pytest.raises(ValueError, match="2 \\* min_part <= max_part"):
        PartLimits(min_part=5, max_part=9)


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="'a' has a negative size"):
        plan_parts([("a", -1)])


# -- the executor, against moto ---------------------------------------------------------------


class Recording:
    """Passes calls to an S3 client, recording each operation (and running BEFORE[op]
    first, to change the world under the code)."""

    def __init__(
        self, client: S3Client, before: dict[str, Callable[[], None]] | None = None
    ) -> None:
        self._client = client
        self._before = before or {}
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append(name)
            if name in self._before:
                self._before.pop(name)()
            return method(**kwargs)

        return call


def put_sources(s3: S3Client, bucket: str, sizes: list[int]) -> tuple[list[str], bytes]:
    """Sources of SIZES under a staging prefix; their concatenation. Random bytes, so a
    misplaced range cannot match by accident (as it could in a repeating pattern)."""
    keys, whole = [], b""
    for i, size in enumerate(sizes):
        key = f"staging/run/predictions/{i:05d}.csv"
        body = random.Random(i).randbytes(size)
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        keys.append(key)
        whole += body
    return keys, whole


def read(s3: S3Client, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.mark.parametrize("sizes", [[10, 0, 25, 1], [0], []], ids=["small", "empty", "none"])
def test_small_sources_are_one_put(s3: S3Client, data_bucket: str, sizes: list[int]) -> None:
    keys, whole = put_sources(s3, data_bucket, sizes)
    client = Recording(s3)
    assemble(cast("S3Client", client), data_bucket, keys, "predictions/a.csv")
    assert read(s3, data_bucket, "predictions/a.csv") == whole
    head = s3.head_object(Bucket=data_bucket, Key="predictions/a.csv")
    assert head["ContentType"] == "text/csv"
    assert client.calls == ["head_object"] * len(keys) + ["get_object"] * len(
        [size for size in sizes if size]
    ) + ["put_object"]


def test_big_sources_are_copied_and_small_ones_topped_up(s3: S3Client, data_bucket: str) -> None:
    keys, whole = put_sources(s3, data_bucket, [100, 11 * MiB, 0, 20])
    client = Recording(s3)
    assemble(cast("S3Client", client), data_bucket, keys, "predictions/a.csv")
    assert read(s3, data_bucket, "predictions/a.csv") == whole
    assert client.calls.count("upload_part_copy") == 1  # the 11 MiB less its top-up
    assert client.calls.count("upload_part") == 2  # the topped-up buffer, the last 20 bytes
    assert pending_uploads(s3, data_bucket) == []


def test_a_source_over_max_part_is_copied_in_pieces(s3: S3Client, data_bucket: str) -> None:
    keys, whole = put_sources(s3, data_bucket, [21 * MiB])
    client = Recording(s3)
    limits = PartLimits(min_part=5 * MiB, max_part=10 * MiB)
    assemble(cast("S3Client", client), data_bucket, keys, "predictions/a.csv", limits=limits)
    assert read(s3, data_bucket, "predictions/a.csv") == whole
    assert client.calls.count("upload_part_copy") == 3
    assert "get_object" not in client.calls


@pytest.mark.parametrize(
    ("missing_size", "op"),
    [(10, "GetObject"), (6 * MiB, "UploadPartCopy")],
    ids=["downloaded", "copied"],
)
def test_a_missing_source_half_way_leaves_nothing(
    s3: S3Client, data_bucket: str, missing_size: int, op: str
) -> None:
    keys, _ = put_sources(s3, data_bucket, [6 * MiB])
    keys.append("staging/run/predictions/00001.csv")  # never written
    with pytest.raises(DataBucketError) as raised:
        # Given sizes, nothing is HEADed: the missing key is met with an upload open.
        assemble(s3, data_bucket, keys, "predictions/a.csv", sizes=[6 * MiB, missing_size])
    assert str(raised.value).startswith(
        f"S3 {op} s3://{data_bucket}/staging/run/predictions/00001.csv failed: "
    )
    assert str(raised.value).endswith(f"(assembling s3://{data_bucket}/predictions/a.csv)")
    assert keys_under(s3, data_bucket, "predictions/") == []
    assert pending_uploads(s3, data_bucket) == []


def test_a_missing_source_fails_before_anything_is_written(s3: S3Client, data_bucket: str) -> None:
    s3.put_object(Bucket=data_bucket, Key="predictions/a.csv", Body=b"the previous run\n")
    client = Recording(s3)
    with pytest.raises(DataBucketError, match=rf"S3 HeadObject s3://{data_bucket}/nope failed"):
        assemble(cast("S3Client", client), data_bucket, ["nope"], "predictions/a.csv")
    assert client.calls == ["head_object"]
    assert read(s3, data_bucket, "predictions/a.csv") == b"the previous run\n"


def test_a_source_rewritten_after_it_was_measured_fails_the_run(
    s3: S3Client, data_bucket: str
) -> None:
    keys, _ = put_sources(s3, data_bucket, [10, 20])

    def rewrite() -> None:
        s3.put_object(Bucket=data_bucket, Key=keys[1], Body=b"a retried child's output")

    client = Recording(s3, before={"get_object": rewrite})
    with pytest.raises(
        DataBucketError, match=r"S3 GetObject .*/00001\.csv failed: PreconditionFailed"
    ):
        assemble(cast("S3Client", client), data_bucket, keys, "predictions/a.csv")
    assert keys_under(s3, data_bucket, "predictions/") == []


def test_a_source_shorter_than_its_stated_size_fails_the_run(
    s3: S3Client, data_bucket: str
) -> None:
    keys, _ = put_sources(s3, data_bucket, [10])
    with pytest.raises(DataBucketError, match="ShortRead: bytes=0-19 gave 10 bytes"):
        assemble(s3, data_bucket, keys, "predictions/a.csv", sizes=[20])
    assert keys_under(s3, data_bucket, "predictions/") == []


def test_a_failed_completion_aborts_the_upload(s3: S3Client, data_bucket: str) -> None:
    keys, _ = put_sources(s3, data_bucket, [6, 7])
    tiny = PartLimits(min_part=5, max_part=10)  # moto wants 5 MiB: the completion fails
    with pytest.raises(
        DataBucketError,
        match=rf"S3 CompleteMultipartUpload s3://{data_bucket}/predictions/a.csv failed: "
        "EntityTooSmall",
    ):
        assemble(s3, data_bucket, keys, "predictions/a.csv", limits=tiny)
    assert keys_under(s3, data_bucket, "predictions/") == []
    assert pending_uploads(s3, data_bucket) == []


def test_sizes_must_match_the_sources(s3: S3Client, data_bucket: str) -> None:
    with pytest.raises(ValueError, match="2 sources but 1 sizes"):
        assemble(s3, data_bucket, ["a", "b"], "predictions/a.csv", sizes=[1])


def test_the_default_limits_are_s3s() -> None:
    assert (S3_LIMITS.min_part, S3_LIMITS.max_part, S3_LIMITS.max_parts) == (
        5 * MiB,
        5 * GiB,
        10_000,
    )
