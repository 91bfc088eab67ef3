"""What ``model-store train`` prints: the candidates compared, for people or as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_store.cli.output import onnx_summary, table

if TYPE_CHECKING:
    from model_store.artifact import Artifact
    from model_store.training import CandidateResult, TrainingResult

HEADERS = [
    "algorithm",
    "cv score",
    "test acc",
    "size (zlib)",
    "size (raw)",
    "load ms",
    "predict 1 row ms",
    "onnx 1 row ms",
    "onnx parity",
]


def ranked(result: TrainingResult) -> list[CandidateResult]:
    return sorted(result.candidates, key=lambda c: -c.cv_score)


def candidate_data(candidate: CandidateResult, *, best: bool) -> dict[str, Any]:
    onnx = candidate.onnx
    return {
        "algorithm": candidate.algorithm,
        "best": best,
        "cv_score": candidate.cv_score,
        "test_accuracy": candidate.test_accuracy,
        "size_compressed": candidate.size_compressed,
        "size_uncompressed": candidate.size_uncompressed,
        "load_ms": candidate.load_seconds * 1e3,
        "predict_one_ms": candidate.predict_seconds * 1e3,
        "onnx_predict_one_ms": (
            onnx.predict_seconds * 1e3 if onnx.predict_seconds is not None else None
        ),
        "onnx_parity": onnx.form.proof.model_dump() if onnx.form else None,
        "onnx_refused": onnx.refused,
        "params": candidate.params,
    }


def data(result: TrainingResult, out: Path) -> dict[str, Any]:
    best = result.best
    return {
        "artifact": str(out),
        "best": best.algorithm,
        "candidates": [candidate_data(c, best=c is best) for c in ranked(result)],
    }


def human(result: TrainingResult, artifact: Artifact, out: Path) -> str:
    best = result.best
    rows = [
        [
            ("* " if c is best else "  ") + c.algorithm,
            c.cv_score,
            c.test_accuracy,
            c.size_compressed,
            c.size_uncompressed,
            f"{c.load_seconds * 1e3:.2f}",
            f"{c.predict_seconds * 1e3:.3f}",
            "-" if c.onnx.predict_seconds is None else f"{c.onnx.predict_seconds * 1e3:.3f}",
            c.onnx.parity,
        ]
        for c in ranked(result)
    ]
    manifest = artifact.manifest
    return "\n".join(
        [
            table(HEADERS, rows),
            "",
            f"best: {best.algorithm} {best.params}",
            onnx_summary(manifest),
            f"wrote {out}/model.joblib ({manifest.size_bytes} bytes, "
            f"sha256 {manifest.sha256[:12]}), "
            + ("model.onnx, " if artifact.onnx_bytes is not None else "")
            + "and manifest.json",
            f"next: model-store publish {out} --registry ...",
        ]
    )
