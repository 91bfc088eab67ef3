"""State machines on the session's moto server, for what starts executions."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


def trivial_state_machine(sfn: SFNClient) -> str:
    """A new state machine that succeeds at once (moto does not run it); its ARN."""
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    return sfn.create_state_machine(
        name=f"sharded-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/sharded",
    )["stateMachineArn"]
