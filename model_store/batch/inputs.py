"""Which objects the batch scorer takes, and how their bytes become CSV text.

A CSV is scored when its name ends in ``.csv`` or ``.csv.gz``, in any case (S3's
notification filters are case-sensitive, so the trigger is the prefix alone and the rule
lives here). Anything else under the input prefix gets a rejected report saying so.
A ``.csv.gz`` is decompressed as it streams; as gzip cannot be split, one too large for a
single invocation is refused whole, naming the limit.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import IO

GZIP_SUFFIX = ".csv.gz"
CSV_SUFFIX = ".csv"
ACCEPTED = "only .csv and .csv.gz files are scored (the suffix in any case)"
# Compressed bytes one invocation can score: ~80,000 rows/s (bench/batch_throughput.py)
# for the 900 s timeout is ~72 million iris-like rows, ~1.4 GB of CSV, which numeric CSV
# gzips to ~350 MB. Half that leaves room for wider rows and slower models.
DEFAULT_MAX_GZIP_BYTES = 180 * 1024 * 1024
# What a truncated or corrupt gzip stream raises while it is read.
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def input_stem(name: str) -> str | None:
    """NAME without its .csv or .csv.gz suffix (any case); None if it has neither."""
    lowered = name.lower()
    for suffix in (GZIP_SUFFIX, CSV_SUFFIX):
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return None


def is_gzip(name: str) -> bool:
    return name.lower().endswith(GZIP_SUFFIX)


def csv_text(binary: IO[bytes], *, gzipped: bool) -> io.TextIOWrapper:
    """The CSV text of a binary stream, decompressed first if GZIPPED, decoded as it is
    read (UTF-8, a BOM dropped; newline='' as the csv module wants)."""
    if gzipped:
        return io.TextIOWrapper(gzip.GzipFile(fileobj=binary, mode="rb"), "utf-8-sig", newline="")
    return io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")


def too_large(size: int, limit: int) -> str:
    return (
        f"a .csv.gz of {size:,} bytes is over the {limit:,}-byte limit for one invocation, "
        "and gzip cannot be split: upload it uncompressed, or in smaller files"
    )
