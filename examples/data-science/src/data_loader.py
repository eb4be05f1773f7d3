"""Read the shipped CSV into numpy arrays and split it reproducibly."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
TARGET = "species"


@dataclass(frozen=True)
class Dataset:
    features: np.ndarray  # shape (n_samples, n_features), float
    labels: np.ndarray  # shape (n_samples,), int index into `classes`
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def load_dataset(path: str | Path) -> Dataset:
    """Load a CSV with the four measurement columns and a `species` column."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {*FEATURES, TARGET} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    classes = tuple(sorted({row[TARGET] for row in rows}))
    features = np.array([[float(row[name]) for name in FEATURES] for row in rows])
    labels = np.array([classes.index(row[TARGET]) for row in rows])
    return Dataset(features, labels, classes)


def train_test_split(
    data: Dataset, test_fraction: float = 0.2, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Shuffle with `seed` and split, keeping every class in both parts."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    test_idx: list[int] = []
    for label in range(len(data.classes)):
        members = np.flatnonzero(data.labels == label)
        rng.shuffle(members)
        count = max(1, round(len(members) * test_fraction))
        test_idx.extend(members[:count].tolist())
    test_mask = np.zeros(len(data), dtype=bool)
    test_mask[test_idx] = True
    return _subset(data, ~test_mask), _subset(data, test_mask)


def _subset(data: Dataset, mask: np.ndarray) -> Dataset:
    return Dataset(data.features[mask], data.labels[mask], data.classes)
