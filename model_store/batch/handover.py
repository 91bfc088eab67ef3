"""Handing a file too large for one invocation to its sharded run.

What the S3 function (and ``model-store rescore``) needs to start a run: when a file is
too large, the object the run scores, the execution's name and starting it once. The
run's own steps live in model_store.batch.sharded, which the batch function does not
import at its cold start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from model_store.batch.report import SourceInfo
from model_store.timestamps import Timestamp

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

log = logging.getLogger(__name__)

# Bytes of .csv one invocation scores; above, the file is scored in shards. ~80,000
# iris-like rows/s (bench/batch_throughput.py) of ~30 bytes is ~2.4 MB/s, ~2 GB in the
# 900 s timeout; a quarter of that leaves room for wider rows and slower models.
DEFAULT_SHARD_ABOVE_BYTES = 512 * 1024 * 1024
# Rows per shard: ~25 s of scoring at the measured ~80,000 rows/s (bench/README.md), far
# inside the 15-minute limit even for a model ten times slower.
DEFAULT_SHARD_ROWS = 2_000_000
# A shard's bytes whatever its rows: wide rows take longer per row.
DEFAULT_SHARD_BYTES = 512 * 1024 * 1024
DEFAULT_CONCURRENCY = 10
_NAME_LIMIT = 80  # characters of a Step Functions execution name


@dataclass(frozen=True)
class Sharding:
    """Where files too large for one invocation go: a .csv over ABOVE_BYTES is handed to
    a sharded run that START begins: START(name, input) returns the name of the execution
    that runs it (NAME, or a fresh one if NAME's run is over)."""

    above_bytes: int
    start: Callable[[str, dict[str, Any]], str]


class ShardedObject(BaseModel):
    """The object a run scores, pinned by the S3 function: the execution's input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int
    outputs: dict[str, str]  # predictions, errors and report keys, as one pass writes them
    started_at: Timestamp

    @property
    def source(self) -> SourceInfo:
        return SourceInfo(
            location=f"s3://{self.bucket}/{self.key}", etag=self.etag, version_id=self.version_id
        )


def execution_name(
    bucket: str, key: str, version_id: str | None, etag: str | None, *, attempt: str = ""
) -> str:
    """The execution's name for one object version: the same for a repeated S3 event, so
    that Step Functions refuses a second run of it. ATTEMPT (a time, say) makes a new
    name for a deliberate rerun, as a name cannot be reused for 90 days."""
    identity = "\0".join([bucket, key, version_id or "", etag or ""])
    digest = hashlib.sha256(identity.encode()).hexdigest()
    # A readable hint of the file, then the digest that makes the name unique.
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", key.rsplit("/", 1)[-1])[:24].strip("-") or "file"
    suffix = f"-{attempt}" if attempt else ""
    name = f"{stem}-{digest[:40]}{suffix}"
    if len(name) > _NAME_LIMIT:
        raise ValueError(f"an execution name is at most {_NAME_LIMIT} characters: {name!r}")
    return name


def start_execution(
    client: SFNClient, state_machine_arn: str, name: str, payload: dict[str, Any]
) -> str:
    """Start NAME on the state machine, once: a run of that name still going is left to
    finish (a repeated event); one that is over gets a successor with a fresh name."""
    document = json.dumps(payload)
    try:
        client.start_execution(stateMachineArn=state_machine_arn, name=name, input=document)
        return name
    except client.exceptions.ExecutionAlreadyExists:
        pass
    execution_arn = f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"
    status = client.describe_execution(executionArn=execution_arn)["status"]
    if status == "RUNNING":
        log.info("execution %s is already running: nothing to start", name)
        return name
    again = f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    log.info("execution %s is over (%s): starting %s", name, status, again)
    client.start_execution(stateMachineArn=state_machine_arn, name=again, input=document)
    return again
