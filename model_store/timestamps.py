"""The timestamp type of model_store's models (manifests, aliases, signatures, reports).

A timestamp read from JSON keeps its offset, with the standard library's tzinfo: pydantic
gives parsed offsets its own TzInfo class, and a datetime holding one that lives until the
interpreter exits can crash its final garbage collection (pydantic/pydantic#12867).
"""

from __future__ import annotations

from datetime import UTC, datetime, timezone
from typing import Annotated

from pydantic import AfterValidator


def _standard_tzinfo(value: datetime) -> datetime:
    offset = value.utcoffset()
    if offset is None:
        return value
    return value.replace(tzinfo=UTC if not offset else timezone(offset))


Timestamp = Annotated[datetime, AfterValidator(_standard_tzinfo)]
