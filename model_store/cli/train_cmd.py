"""``model-store train``: grid search, the six-way comparison, and the artifact directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from model_store.cli.output import UsageError, emit, onnx_summary, progress, table
from model_store.training import (
    ALGORITHMS,
    build_artifact,
    load_csv_dataset,
    load_iris_dataset,
    train,
)

if TYPE_CHECKING:
    from model_store.cli.registry_cmds import Subparsers


def add_parser(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "train",
        parents=[common],
        help="grid-search six algorithms and write the best model as an artifact",
        description="Grid-search six algorithms (two scalers each) with k-fold CV, compare "
        "them on a held-out test split, and write the best as model.joblib + manifest.json.",
    )
    parser.add_argument("--data", type=Path, help="training CSV with a header (default: iris)")
    parser.add_argument("--target", help="target column of --data")
    parser.add_argument(
        "--name", default=None, help="model name (default: iris, or the CSV's stem)"
    )
    parser.add_argument("--out", type=Path, required=True, help="artifact directory to write")
    parser.add_argument(
        "--compress",
        type=int,
        default=3,
        choices=range(10),
        metavar="0-9",
        help="joblib zlib compression level (default 3)",
    )
    parser.add_argument(
        "--algorithms",
        default=",".join(ALGORITHMS),
        help=f"comma-separated subset of: {','.join(ALGORITHMS)}",
    )
    parser.add_argument("--cv", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument(
        "--test-size", type=float, default=0.2, help="held-out fraction (default 0.2)"
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--jobs", type=int, default=None, help="parallel fits (default 1; -1 = all cores)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.data is not None and not args.target:
        raise UsageError("--data needs --target COLUMN")
    dataset = load_iris_dataset() if args.data is None else load_csv_dataset(args.data, args.target)
    name = args.name or ("iris" if args.data is None else args.data.stem)
    progress(
        f"training on {dataset.source}: {len(dataset.labels)} rows, "
        f"{len(dataset.feature_names)} features, target {dataset.target_name!r}"
    )
    algorithms = tuple(a.strip() for a in args.algorithms.split(",") if a.strip())
    result = train(
        dataset,
        algorithms=algorithms,
        cv_folds=args.cv,
        test_size=args.test_size,
        random_state=args.seed,
        compress=args.compress,
        n_jobs=args.jobs,
        progress=progress,
    )
    artifact = build_artifact(result, name=name)
    artifact.write(args.out)
    best = result.best
    ordered = sorted(result.candidates, key=lambda c: -c.cv_score)
    rows = [
        {
            "algorithm": c.algorithm,
            "best": c is best,
            "cv_score": c.cv_score,
            "test_accuracy": c.test_accuracy,
            "size_compressed": c.size_compressed,
            "size_uncompressed": c.size_uncompressed,
            "load_ms": c.load_seconds * 1e3,
            "predict_one_ms": c.predict_seconds * 1e3,
            "onnx_predict_one_ms": (
                c.onnx.predict_seconds * 1e3 if c.onnx.predict_seconds is not None else None
            ),
            "onnx_parity": c.onnx.form.proof.model_dump() if c.onnx.form else None,
            "onnx_refused": c.onnx.refused,
            "params": c.params,
        }
        for c in ordered
    ]
    human = "\n".join(
        [
            table(
                [
                    "algorithm",
                    "cv score",
                    "test acc",
                    "size (zlib)",
                    "size (raw)",
                    "load ms",
                    "predict 1 row ms",
                    "onnx 1 row ms",
                    "onnx parity",
                ],
                [
                    [
                        ("* " if r["best"] else "  ") + str(r["algorithm"]),
                        r["cv_score"],
                        r["test_accuracy"],
                        r["size_compressed"],
                        r["size_uncompressed"],
                        f"{r['load_ms']:.2f}",
                        f"{r['predict_one_ms']:.3f}",
                        "-"
                        if c.onnx.predict_seconds is None
                        else f"{c.onnx.predict_seconds * 1e3:.3f}",
                        c.onnx.parity,
                    ]
                    for r, c in zip(rows, ordered, strict=True)
                ],
            ),
            "",
            f"best: {best.algorithm} {best.params}",
            onnx_summary(artifact.manifest),
            f"wrote {args.out}/model.joblib ({artifact.manifest.size_bytes} bytes, "
            f"sha256 {artifact.manifest.sha256[:12]}), "
            + ("model.onnx, " if artifact.onnx_bytes is not None else "")
            + "and manifest.json",
            f"next: model-store publish {args.out} --registry ...",
        ]
    )
    emit(args.json, {"artifact": str(args.out), "best": best.algorithm, "candidates": rows}, human)
    return 0
