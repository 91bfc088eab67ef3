"""Timestamps read from JSON keep their instant and offset, with the standard library's
tzinfo (pydantic's own TzInfo can crash the interpreter's final garbage collection)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel

from model_store.registry.core import AliasEvent
from model_store.timestamps import Timestamp


class Stamped(BaseModel):
    at: Timestamp


@pytest.mark.parametrize(
    ("text", "offset"),
    [("2026-01-01T00:00:00Z", timedelta(0)), ("2026-01-01T00:00:00+02:00", timedelta(hours=2))],
)
def test_a_parsed_offset_is_a_standard_timezone(text: str, offset: timedelta) -> None:
    parsed = Stamped.model_validate_json(f'{{"at": "{text}"}}').at

    assert type(parsed.tzinfo) is timezone
    assert parsed.utcoffset() == offset
    assert parsed == datetime(2026, 1, 1, tzinfo=timezone(offset))


def test_utc_is_the_standard_librarys_utc_and_round_trips() -> None:
    event = AliasEvent.model_validate_json(
        '{"action": "promote", "version": "1", "at": "2026-01-01T00:00:00Z"}'
    )

    assert event.at.tzinfo is UTC
    assert event.model_dump_json() == (
        '{"action":"promote","version":"1","at":"2026-01-01T00:00:00Z"}'
    )


def test_a_naive_timestamp_stays_naive() -> None:
    assert Stamped.model_validate_json('{"at": "2026-01-01T00:00:00"}').at.tzinfo is None
