"""Lambda entry point: ``batch_scoring.handler.handler`` for S3 ObjectCreated events.

It only adapts the event, read through Powertools' S3Event: each record's bucket,
URL-decoded key and version go to model_store's batch engine, and a file too large for
one invocation to the sharded run's state machine (SHARDING_STATE_MACHINE_ARN). A failure that
is not about rows (no model, unreadable object) is raised after the other records are
done, so Lambda's retries and the on-failure destination take over; repeated deliveries
are skipped by the engine.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event

from batch_scoring.observability import SERVICE, record_report
from batch_scoring.settings import BatchSettings
from model_store.aws import s3_client, stepfunctions_client
from model_store.batch import score_s3_object
from model_store.batch.handover import Sharding, start_execution
from model_store.observability import FunctionTelemetry
from model_store.tracing import subsegment, trace_aws_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_stepfunctions import SFNClient

telemetry = FunctionTelemetry(SERVICE)
logger, metrics = telemetry.logger, telemetry.metrics

settings = BatchSettings()
loader = settings.loader()
# Every invocation needs the data bucket's client: it is made in the init phase (it makes
# no network call), not on the clock of the first object.
client: S3Client = s3_client()
trace_aws_client(client)  # each S3 call an X-Ray subsegment, on sampled invocations


def _sharding() -> Sharding | None:
    if not settings.sharding_state_machine_arn:
        return None
    return Sharding(
        above_bytes=settings.shard_above_bytes,
        start=lambda name, payload: start_execution(
            _stepfunctions(), settings.sharding_state_machine_arn, name, payload
        ),
    )


@functools.cache
def _stepfunctions() -> SFNClient:
    """Made on the first file too large for one invocation, not at every cold start."""
    sfn = stepfunctions_client()
    trace_aws_client(sfn)
    return sfn


sharding = _sharding()


class BatchFailedError(Exception):
    """One or more objects of the event could not be scored; Lambda should retry."""


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    results, failures = [], []
    # A notification with no records (S3's own test event has none) scores nothing.
    for record in S3Event(event).records if event.get("Records") else ():
        if "s3" not in record:
            logger.warning(
                "ignoring a record that is not an S3 event", extra={"record": record.raw_event}
            )
            continue
        bucket = record.s3.bucket.name
        # S3Event decodes only the first record's key (object_key); every record needs it.
        key = unquote_plus(record.s3.get_object.key)
        version_id = record.s3.get_object.version_id or None
        logger.append_keys(source=f"s3://{bucket}/{key}")
        try:
            with subsegment("score object", bucket=bucket):
                outcome = score_s3_object(
                    client,
                    bucket,
                    key,
                    loader.get,
                    version_id=version_id,
                    layout=settings.layout,
                    chunk_rows=settings.chunk_rows,
                    drift_threshold=settings.drift_threshold,
                    neutralise_formulas=settings.neutralise_formulas,
                    max_gzip_bytes=settings.max_gzip_bytes,
                    sharding=sharding,
                )
        except Exception as exc:
            logger.exception("scoring failed")
            failures.append(f"s3://{bucket}/{key}: {exc}")
            continue
        report = outcome.report
        summary = {
            "source": report.source.location,
            "status": "duplicate" if outcome.duplicate else report.status,
            "rows_in": report.rows_in,
            "rows_scored": report.rows_scored,
            "rows_failed": report.rows_failed,
            "reason": report.reason,
            "drift_flagged": report.drift.flagged if report.drift else [],
        }
        if report.status == "running":
            summary["execution"] = report.execution
            logger.info("handed to a sharded run", extra=summary)
            results.append(summary)
            continue
        logger.info("scored" if report.status == "succeeded" else report.status, extra=summary)
        if not outcome.duplicate:
            record_report(metrics, report)
        results.append(summary)
    telemetry.flush()
    if failures:
        raise BatchFailedError("; ".join(failures))
    return {"results": results}
