"""Training: the six-algorithm grid search and the artifact of its best model."""

from model_store.training.data import Dataset, load_csv_dataset, load_iris_dataset
from model_store.training.grids import ALGORITHMS, search_space
from model_store.training.search import (
    CandidateResult,
    SearchStep,
    TrainingResult,
    build_artifact,
    train,
)

__all__ = [
    "ALGORITHMS",
    "CandidateResult",
    "Dataset",
    "SearchStep",
    "TrainingResult",
    "build_artifact",
    "load_csv_dataset",
    "load_iris_dataset",
    "search_space",
    "train",
]
