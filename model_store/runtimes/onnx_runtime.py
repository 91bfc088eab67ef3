"""The ONNX Runtime runtime: model.onnx in an InferenceSession, nothing unpickled.

The graph takes the features as float64 (the manifest's dtype) and gives the class
probabilities in the manifest's class order (the parity proof checked both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from model_store.exceptions import IncompatibleModelError, IntegrityError
from model_store.scoring import Matrix, Predictions

FLOAT32_MAX = float(np.finfo(np.float32).max)

if TYPE_CHECKING:
    from model_store.manifest import OnnxForm


@dataclass(frozen=True)
class OnnxRuntime:
    session: Any = field(repr=False)
    input_name: str
    label_output: str
    probabilities_output: str | None
    classes: list[str]
    # The values a float32 stage casts (a graph that scales in float64, then casts to
    # float32 before its classifier), so values float32 cannot hold are not scored as inf.
    float32_stage: str | None = None
    name: Literal["onnx"] = field(default="onnx", init=False)

    def predict(self, matrix: Matrix) -> Predictions:
        if matrix.shape[0] == 0:
            return Predictions.empty(self.classes)
        feed = {self.input_name: np.ascontiguousarray(matrix, dtype=np.float64)}
        if self.probabilities_output is None:
            (labels,) = self.session.run([self.label_output], feed)
            return Predictions([str(label) for label in labels], self.classes, None)
        if self.float32_stage is None:
            (probabilities,) = self.session.run([self.probabilities_output], feed)
        else:
            probabilities, stage = self.session.run(
                [self.probabilities_output, self.float32_stage], feed
            )
            overflow = ~(np.abs(stage) <= FLOAT32_MAX).all(axis=1)
            if overflow.any():
                probabilities = np.array(probabilities, dtype=np.float64)
                probabilities[overflow] = np.nan  # not scored: the caller says why
        return Predictions.from_probabilities(
            np.asarray(probabilities, dtype=np.float64), self.classes
        )


def running_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def new_session(data: bytes) -> Any:
    """An InferenceSession on one thread that does not spin: Lambda gives most memory
    sizes a fraction of a core, where a thread pool only competes with itself."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(
        data, sess_options=options, providers=["CPUExecutionProvider"]
    )


def open_session(data: bytes, form: OnnxForm, classes: list[str], source: str) -> OnnxRuntime:
    """The runtime for verified model.onnx bytes, with the input and outputs FORM names."""
    try:
        session = new_session(data)
    except Exception as exc:
        # The bytes are the vouched-for ones: a graph this release cannot open (an opset
        # it does not implement, say) is a version problem, not tampering.
        raise IncompatibleModelError(
            f"{source}: ONNX Runtime {running_version()} cannot open model.onnx: {exc}"
        ) from exc
    outputs = {o.name for o in session.get_outputs()}
    wanted = {
        form.label_output,
        form.probabilities_output or form.label_output,
        form.float32_stage or form.label_output,
    }
    if not wanted <= outputs or form.input_name not in {i.name for i in session.get_inputs()}:
        raise IntegrityError(
            f"{source}: model.onnx does not have the input and outputs its manifest names"
        )
    return OnnxRuntime(
        session,
        form.input_name,
        form.label_output,
        form.probabilities_output,
        classes,
        form.float32_stage,
    )
