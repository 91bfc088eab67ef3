"""Stand-ins the loading-gate tests share: hostile bytes, and a registry that counts reads."""

from __future__ import annotations

import os
from pathlib import Path

from model_store.registry import LocalStore, Registry


class Trap:
    """Unpickling this runs ``os.mkdir(marker)``: a visible stand-in for hostile code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


class CountingRegistry(Registry):
    """A directory registry that records every model file it is asked for."""

    def __init__(self, root: Path) -> None:
        super().__init__(LocalStore(root))
        self.files: list[str] = []

    @property
    def byte_reads(self) -> int:
        return len(self.files)

    def read_file(self, name: str, version: str, file: str) -> bytes:
        self.files.append(file)
        return super().read_file(name, version, file)
