from pathlib import Path

import numpy as np
import pytest
from src.data_loader import FEATURES, load_dataset, train_test_split

DATA = Path(__file__).resolve().parents[1] / "data" / "raw" / "iris-like.csv"


def test_shipped_dataset_shape():
    data = load_dataset(DATA)
    assert data.features.shape == (150, len(FEATURES))
    assert data.classes == ("setosa", "versicolor", "virginica")
    assert np.bincount(data.labels).tolist() == [50, 50, 50]
    assert (data.features > 0).all()


def test_split_is_stratified_and_reproducible():
    data = load_dataset(DATA)
    train, test = train_test_split(data, test_fraction=0.2, seed=7)
    again, _ = train_test_split(data, test_fraction=0.2, seed=7)
    assert len(train) + len(test) == len(data)
    assert np.bincount(test.labels).tolist() == [10, 10, 10]
    assert np.array_equal(train.features, again.features)


def test_missing_column_is_reported(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sepal_length,species\n5.1,setosa\n")
    with pytest.raises(ValueError, match="missing columns"):
        load_dataset(bad)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5])
def test_split_rejects_bad_fraction(fraction):
    data = load_dataset(DATA)
    with pytest.raises(ValueError):
        train_test_split(data, test_fraction=fraction)
