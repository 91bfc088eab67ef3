"""One local stack (`make local`, in-process) for the whole e2e session, on free ports.

The functions run from the built artifacts under the RIE; the model registry starts with
the session's tiny iris model as version 1, promoted. The refresh interval is 1 s so a
promotion shows within the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.stack import LocalStack, StackConfig
from model_store import Artifact
from tests.support.local_stack import CHUNK_ROWS, REFRESH_SECONDS, SHARD_ABOVE_BYTES, registry_of


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, iris_artifact: Artifact
) -> Iterator[LocalStack]:
    refresh = {"MODEL_REFRESH_SECONDS": str(REFRESH_SECONDS)}
    config = StackConfig(
        api_port=0,
        s3_port=0,
        state_dir=tmp_path_factory.mktemp("local-state"),
        env_overrides={"PredictApiFunction": refresh, "BatchScoringFunction": refresh},
        # Files over 4 KiB take the sharded path (tests/e2e/test_sharded.py): shards of 40
        # lines, cut where the scorer's chunks of 10 end. The other tests' files are smaller.
        parameter_overrides={
            "ShardAboveBytes": str(SHARD_ABOVE_BYTES),
            "ShardRows": "40",
            "BatchChunkRows": str(CHUNK_ROWS),
        },
        max_environments=2,
        retry_delay=0.2,
        seed_model=False,
    )
    log_path = config.state / "stack.log"
    log = log_path.open("a", buffering=1)
    print(f"local stack log: {log_path}")

    def write(source: str, line: str) -> None:
        log.write(f"{source:<22}| {line}\n")

    local = LocalStack(config, log=write)
    local.start()
    try:
        registry_of(local).publish(iris_artifact, name="iris", version="1")
        registry_of(local).promote("iris", "1")
        yield local
    finally:
        local.stop()
        log.close()
