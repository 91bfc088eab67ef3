"""SVC's decision function in double precision, for skl2onnx (tooling only).

skl2onnx converts an SVC into ONNX-ML's SVMClassifier, whose support vectors and dual
coefficients are float32 attributes. Behind a sigmoid calibration with a steep slope (a
large C, rows past the training range) that rounding moved probabilities by more than the
parity proof's tolerance: the grid's usual winner on iris, a calibrated polynomial SVC with
C=100, failed its proof by 1.3e-5. For the case the grid produces (an SVC inside
CalibratedClassifierCV, more than two classes, double input, raw scores) this converter
writes the kernel, the one-vs-one decisions and scikit-learn's one-vs-rest transform with
standard ONNX operators in float64, as libsvm computes them; every other case goes to
skl2onnx's own converter. The parity proof still decides whether the result is kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

_KERNELS = ("linear", "poly", "rbf", "sigmoid")
_installed = False


def install() -> None:
    """Make skl2onnx convert SVC through ``convert_svc`` (once per process)."""
    global _installed
    if _installed:
        return
    from skl2onnx.common._registration import register_converter

    register_converter(
        "SklearnSVC",
        convert_svc,
        overwrite=True,
        options={
            "zipmap": [True, False, "columns"],
            "nocl": [True, False],
            "output_class_labels": [False, True],
            "raw_scores": [True, False],
        },
    )
    _installed = True


def convert_svc(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto
    from skl2onnx.operator_converters.support_vector_machines import (
        convert_sklearn_svm_classifier,
    )
    from skl2onnx.proto import onnx_proto

    svc = operator.raw_operator
    double = operator.inputs[0].type.to_onnx_type().tensor_type.elem_type == TensorProto.DOUBLE
    raw_scores = container.get_options(svc, {"raw_scores": False})["raw_scores"]
    exact = (
        double
        and raw_scores
        and len(svc.classes_) > 2
        and getattr(svc, "decision_function_shape", "ovr") == "ovr"
        and svc.kernel in _KERNELS
        and isinstance(svc.support_vectors_, np.ndarray)
    )
    if not exact:
        convert_sklearn_svm_classifier(scope, operator, container)
        return
    _Graph(scope, container, onnx_proto.TensorProto.DOUBLE).decision_function(
        svc,
        operator.inputs[0].full_name,
        operator.outputs[0].full_name,
        operator.outputs[1].full_name,
    )


class _Graph:
    def __init__(self, scope: Any, container: Any, dtype: int) -> None:
        self.scope = scope
        self.container = container
        self.dtype = dtype

    def constant(self, prefix: str, values: npt.ArrayLike) -> str:
        array = np.asarray(values, dtype=np.float64)
        name: str = self.scope.get_unique_variable_name(prefix)
        self.container.add_initializer(name, self.dtype, list(array.shape), array.ravel())
        return name

    def node(self, op_type: str, inputs: list[str], prefix: str, **attrs: Any) -> str:
        output: str = self.scope.get_unique_variable_name(prefix)
        self.container.add_node(
            op_type, inputs, output, name=self.scope.get_unique_operator_name(op_type), **attrs
        )
        return output

    def kernel(self, svc: Any, x: str) -> str:
        """K[m, s] = k(x_m, sv_s), libsvm's kernels."""
        vectors = np.asarray(svc.support_vectors_, dtype=np.float64)
        gamma, coef0, degree = float(svc._gamma), float(svc.coef0), float(svc.degree)
        dot = self.node("MatMul", [x, self.constant("sv_t", vectors.T)], "dot")
        if svc.kernel == "linear":
            return dot
        if svc.kernel == "rbf":
            # |x - sv|^2 = |x|^2 - 2 x.sv + |sv|^2
            x2 = self.node("Mul", [x, x], "x_sq")
            x2 = self.node(
                "MatMul", [x2, self.constant("ones", np.ones((vectors.shape[1], 1)))], "x2"
            )
            sv2 = self.constant("sv2", (vectors**2).sum(axis=1)[np.newaxis, :])
            cross = self.node("Mul", [dot, self.constant("minus_two", -2.0)], "cross")
            distance = self.node("Add", [self.node("Add", [x2, cross], "d"), sv2], "d2")
            scaled = self.node("Mul", [distance, self.constant("minus_gamma", -gamma)], "gd2")
            return self.node("Exp", [scaled], "k")
        affine = self.node(
            "Add",
            [
                self.node("Mul", [dot, self.constant("gamma", gamma)], "gdot"),
                self.constant("coef0", coef0),
            ],
            "affine",
        )
        if svc.kernel == "poly":
            return self.node("Pow", [affine, self.constant("degree", degree)], "k")
        return self.node("Tanh", [affine], "k")

    def decision_function(self, svc: Any, x: str, label: str, scores: str) -> None:
        """scikit-learn's SVC.decision_function (ovr shape) and its argmax as the label."""
        n_classes = len(svc.classes_)
        pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
        # libsvm's one-vs-one decision for pair (i, j): the coefficients of class i's
        # support vectors are in row j-1 of dual_coef_, class j's in row i; plus _intercept_.
        starts = np.concatenate([[0], np.cumsum(svc.n_support_)])
        dual = np.asarray(svc._dual_coef_, dtype=np.float64)
        weights = np.zeros((dual.shape[1], len(pairs)))
        for p, (i, j) in enumerate(pairs):
            weights[starts[i] : starts[i + 1], p] = dual[j - 1, starts[i] : starts[i + 1]]
            weights[starts[j] : starts[j + 1], p] = dual[i, starts[j] : starts[j + 1]]
        kernel = self.kernel(svc, x)
        decisions = self.node(
            "Add",
            [
                self.node("MatMul", [kernel, self.constant("weights", weights)], "ovo"),
                self.constant("intercept", np.asarray(svc._intercept_)[np.newaxis, :]),
            ],
            "dec",
        )
        # _ovr_decision_function(dec < 0, -dec, n_classes): votes plus bounded confidences.
        first = np.zeros((len(pairs), n_classes))
        second = np.zeros((len(pairs), n_classes))
        for p, (i, j) in enumerate(pairs):
            first[p, i] = second[p, j] = 1.0
        negative = self.node(
            "Cast",
            [self.node("Less", [decisions, self.constant("zero", 0.0)], "neg")],
            "neg_f",
            to=self.dtype,
        )
        positive = self.node("Sub", [self.constant("one", 1.0), negative], "pos_f")
        votes = self.node(
            "Add",
            [
                self.node("MatMul", [positive, self.constant("first", first)], "v1"),
                self.node("MatMul", [negative, self.constant("second", second)], "v2"),
            ],
            "votes",
        )
        confidence = self.node("MatMul", [decisions, self.constant("sign", first - second)], "conf")
        bounded = self.node(
            "Div",
            [
                confidence,
                self.node(
                    "Mul",
                    [
                        self.node(
                            "Add",
                            [self.node("Abs", [confidence], "abs"), self.constant("one", 1.0)],
                            "abs1",
                        ),
                        self.constant("three", 3.0),
                    ],
                    "den",
                ),
            ],
            "bounded",
        )
        self.container.add_node(
            "Add", [votes, bounded], scores, name=self.scope.get_unique_operator_name("Add")
        )
        self.container.add_node(
            "ArgMax",
            [scores],
            label,
            name=self.scope.get_unique_operator_name("ArgMax"),
            axis=1,
            keepdims=0,
        )
