"""Lambda entry points of the sharded run's steps (statemachine/sharded_scoring.asl.json):
``batch_scoring.sharded.plan``, ``.score`` and ``.finish``, one function each.

They only adapt the state machine's payloads to model_store.batch.sharded; a step that
raises fails its state, and the state machine's Retry and Catch take over.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from batch_scoring.observability import SERVICE, record_report
from batch_scoring.settings import ShardSettings
from model_store.aws import s3_client
from model_store.batch.report import ModelRef
from model_store.batch.sharded import StepInput, fail_run, merge_run, plan_run, score_shard
from model_store.observability import FunctionTelemetry
from model_store.tracing import trace_aws_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from model_store.gate import LoadedModel

telemetry = FunctionTelemetry(SERVICE)
logger, metrics = telemetry.logger, telemetry.metrics

settings = ShardSettings()
client: S3Client = s3_client()
trace_aws_client(client)


@functools.cache
def _model(version: str) -> LoadedModel:
    """The model version the plan pinned: every shard scores with the same one."""
    return settings.model_copy(update={"model_version": version}).loader().get()


@logger.inject_lambda_context(clear_state=True)
def plan(event: dict[str, Any], context: Any) -> dict[str, Any]:
    step = StepInput.model_validate(event)
    logger.append_keys(source=step.object.source.location, execution=step.run)
    manifest = settings.loader().peek_manifest()
    if manifest.version is None:
        raise ValueError(f"the manifest of {manifest.name} names no version")
    planned = plan_run(
        client,
        step,
        ModelRef(name=manifest.name, version=manifest.version),
        chunk_rows=settings.chunk_rows,
        shard_rows=settings.shard_rows,
        shard_bytes=settings.shard_bytes,
        concurrency=settings.concurrency,
    )
    logger.info("planned", extra={"outcome": planned.outcome, "shards": planned.shards})
    telemetry.flush()
    return planned.model_dump(mode="json")


@logger.inject_lambda_context(clear_state=True)
def score(event: dict[str, Any], context: Any) -> dict[str, Any]:
    step = StepInput.model_validate(event)
    if step.plan is None or step.plan.model is None or step.shard is None:
        raise ValueError("a shard step needs the plan, its model and the shard")
    logger.append_keys(
        source=step.object.source.location, execution=step.run, shard=step.shard.index
    )
    tally = score_shard(
        client,
        step,
        _model(step.plan.model.version),
        drift_threshold=settings.drift_threshold,
        neutralise_formulas=settings.neutralise_formulas,
    )
    summary = {
        "index": tally.index,
        "refused": tally.refused,
        "rows_scored": tally.rows_scored,
        "rows_failed": tally.rows_failed,
    }
    logger.info("shard scored", extra=summary)
    telemetry.flush()
    return summary


@logger.inject_lambda_context(clear_state=True)
def finish(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Merge the shards, or (with the failed state's error) clean up after them."""
    step = StepInput.model_validate(event)
    logger.append_keys(source=step.object.source.location, execution=step.run)
    report = fail_run(client, step) if step.error is not None else merge_run(client, step)
    summary = {
        "source": report.source.location,
        "status": report.status,
        "rows_in": report.rows_in,
        "rows_scored": report.rows_scored,
        "rows_failed": report.rows_failed,
        "reason": report.reason,
        "drift_flagged": report.drift.flagged if report.drift else [],
    }
    logger.info("scored" if report.status == "succeeded" else report.status, extra=summary)
    if report.status != "failed":
        record_report(metrics, report)
    telemetry.flush()
    return summary
