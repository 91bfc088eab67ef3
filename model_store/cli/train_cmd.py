"""``model-store train``: grid search, the six-way comparison, and the artifact directory.

scikit-learn is imported only when training starts: parsing, ``--help`` and every
mistake found in the arguments cost none of its second or so of imports.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from model_store.cli import train_report
from model_store.cli.options import (
    Parser,
    add_command,
    integer,
    number,
    require_file,
    segment,
    writable_dir,
)
from model_store.cli.output import UsageError, emit
from model_store.cli.progress import Bar, wanted
from model_store.exceptions import ModelStoreError

if TYPE_CHECKING:
    from model_store.cli.options import Subparsers
    from model_store.training import Dataset, SearchStep, TrainingResult

# model_store.training.ALGORITHMS, named here so that parsing needs no scikit-learn (a
# test holds the two equal).
ALGORITHMS = ("knn", "svc", "logistic_regression", "random_forest", "decision_tree", "naive_bayes")


def add_parser(commands: Subparsers, parents: list[Parser]) -> None:
    parser = add_command(
        commands,
        "train",
        run,
        parents=parents,
        help="grid-search six algorithms and write the best model as an artifact",
        description="Grid-search six algorithms (two scalers each) with k-fold CV, compare "
        "them on a held-out test split, and write the best as model.joblib + manifest.json.",
    )
    parser.add_argument(
        "--data", type=Path, metavar="CSV", help="training CSV with a header (default: iris)"
    )
    parser.add_argument("--target", metavar="COLUMN", help="target column of --data")
    parser.add_argument(
        "--name",
        type=segment("model name"),
        help="model name (default: iris, or the CSV's stem)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="artifact directory to write"
    )
    parser.add_argument(
        "--compress",
        type=integer(0, 9),
        default=3,
        metavar="0-9",
        help="joblib zlib compression level (default 3)",
    )
    parser.add_argument(
        "--algorithms",
        type=_algorithms,
        default=ALGORITHMS,
        metavar="NAMES",
        help=f"comma-separated subset of: {', '.join(ALGORITHMS)} (default: all)",
    )
    parser.add_argument(
        "--cv",
        type=integer(2),
        default=5,
        metavar="FOLDS",
        help="cross-validation folds (default 5)",
    )
    parser.add_argument(
        "--test-size",
        type=number(above=0, below=1),
        default=0.2,
        metavar="FRACTION",
        help="held-out fraction of the rows, between 0 and 1 (default 0.2)",
    )
    parser.add_argument(
        "--seed", type=integer(0, 2**32 - 1), default=42, help="random seed (default 42)"
    )
    parser.add_argument(
        "--jobs",
        type=integer(zero="0 runs nothing: use 1 or more, or -1 for all cores"),
        default=None,
        metavar="N",
        help="parallel fits (default 1; -1 = all cores)",
    )


def _algorithms(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in ALGORITHMS]
    if unknown or not names:
        what = f"unknown algorithm {', '.join(map(repr, unknown))}" if unknown else "no algorithm"
        raise argparse.ArgumentTypeError(f"{what}; choose from {', '.join(ALGORITHMS)}")
    return names


def run(args: argparse.Namespace) -> int:
    if args.data is None and args.target is not None:
        raise UsageError("--target names a column of --data: pass --data too (iris has its own)")
    if args.data is not None:
        if not args.target:
            raise UsageError("--data needs --target COLUMN")
        require_file(args.data)
    writable_dir(args.out)
    from model_store.training import build_artifact, load_csv_dataset, load_iris_dataset

    dataset = load_iris_dataset() if args.data is None else load_csv_dataset(args.data, args.target)
    _check_split(dataset, args.cv, args.test_size)
    with Bar("grid search", "fits", show=wanted(args.json)) as bar:
        bar.note(
            f"training on {dataset.source}: {len(dataset.labels)} rows, "
            f"{len(dataset.feature_names)} features, target {dataset.target_name!r}"
        )
        result = _train(args, dataset, bar)
    artifact = build_artifact(
        result, name=args.name or ("iris" if args.data is None else args.data.stem)
    )
    artifact.write(args.out)
    emit(
        args.json,
        train_report.data(result, args.out),
        train_report.human(result, artifact, args.out),
    )
    return 0


def _check_split(dataset: Dataset, folds: int, test_size: float) -> None:
    """Refuse a split the data cannot give, in the options' words (before any fit)."""
    rows = len(dataset.labels)
    train_rows = rows - math.ceil(rows * test_size)
    if folds > train_rows:
        raise UsageError(
            f"--cv {folds} needs at least {folds} training rows; {dataset.source} leaves "
            f"{train_rows} after --test-size {test_size:g}"
        )


def _train(args: argparse.Namespace, dataset: Dataset, bar: Bar) -> TrainingResult:
    from model_store.training import train

    def step(event: SearchStep) -> None:
        if event.done:
            bar.update(advance=event.fits)
        else:
            bar.update(
                total=event.total_fits,
                description=f"[{event.index}/{event.count}] {event.algorithm}",
            )

    try:
        return train(
            dataset,
            algorithms=args.algorithms,
            cv_folds=args.cv,
            test_size=args.test_size,
            random_state=args.seed,
            compress=args.compress,
            n_jobs=args.jobs,
            progress=bar.note,
            on_step=step,
        )
    except ModelStoreError:
        raise
    except ValueError as exc:  # what scikit-learn says of a split the data cannot give
        raise ModelStoreError(f"cannot train on {dataset.source} as asked: {exc}") from None
