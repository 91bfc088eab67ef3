"""Serving runtimes: one small interface, two implementations.

A runtime turns a checked float64 matrix into Predictions; loading, codecs and transport
live elsewhere. ``sklearn`` unpickles model.joblib (the gate has verified its bytes);
``onnx`` runs model.onnx in ONNX Runtime and never unpickles anything. Labels, class
order and every non-probability field are the same whichever runs; probabilities agree
within the parity proof's tolerance (see model_store.onnx_conversion).
"""

from __future__ import annotations

from typing import Literal, Protocol

from model_store.scoring import Matrix, Predictions

RuntimeName = Literal["onnx", "sklearn"]
RUNTIME_NAMES: tuple[RuntimeName, ...] = ("onnx", "sklearn")


class ModelRuntime(Protocol):
    """Scores a matrix whose columns are the manifest's features, in order."""

    @property
    def name(self) -> RuntimeName: ...

    def predict(self, matrix: Matrix) -> Predictions:
        """MATRIX is 2-D float64 and finite (checked by the caller)."""
        ...


__all__ = ["RUNTIME_NAMES", "ModelRuntime", "RuntimeName"]
