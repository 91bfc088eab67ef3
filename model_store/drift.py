"""Training statistics of features and the population stability index against them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from model_store.manifest import FeatureStats, QuantileBins

DEFAULT_BINS = 10
# Floor for empty bins: PSI takes a log of each fraction.
_EPSILON = 1e-4


def feature_stats(values: npt.NDArray[np.float64], n_bins: int = DEFAULT_BINS) -> FeatureStats:
    """Summary and quantile bins of one training column (finite values only)."""
    quantiles = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
    edges = np.unique(quantiles)
    counts = bin_counts(values, edges.tolist())
    return FeatureStats(
        min=float(values.min()),
        max=float(values.max()),
        mean=float(values.mean()),
        std=float(values.std()),
        bins=QuantileBins(
            edges=[float(e) for e in edges],
            fractions=[float(c) for c in counts / counts.sum()],
        ),
    )


def bin_counts(values: npt.NDArray[np.float64], edges: list[float]) -> npt.NDArray[np.float64]:
    """Counts per bin, bins as QuantileBins defines them (right-closed, open ends)."""
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)


def population_stability_index(
    expected_fractions: list[float], actual_counts: npt.NDArray[np.float64]
) -> float:
    """PSI = sum((a - e) * ln(a / e)); about 0.1 is a moderate shift, 0.25 a large one."""
    total = actual_counts.sum()
    if total == 0:
        return 0.0
    expected = np.clip(np.asarray(expected_fractions, dtype=np.float64), _EPSILON, None)
    actual = np.clip(actual_counts / total, _EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
