"""The one loader of the JSON events in events/ (the files `sam local invoke -e` uses)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


@cache
def _read(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return data


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of events/NAME (``predict.json``, ...), safe to modify."""
    return copy.deepcopy(_read(name))
