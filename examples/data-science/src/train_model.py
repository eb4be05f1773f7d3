"""Train the classifier on the shipped data; write the model and its metrics; print accuracy.

Usage: python -m src.train_model [--data CSV] [--model models/model.json] [--metrics FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from src.data_loader import load_dataset, train_test_split
from src.model import SoftmaxClassifier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="data/raw/iris-like.csv")
    parser.add_argument("--model", default="models/model.json")
    parser.add_argument("--metrics", default="models/metrics.json")
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--min-accuracy", type=float, default=0.8)
    args = parser.parse_args(argv)

    data = load_dataset(args.data)
    train, test = train_test_split(data, test_fraction=0.2, seed=42)
    model = SoftmaxClassifier(epochs=args.epochs).fit(train.features, train.labels, data.classes)
    metrics = {
        "train_accuracy": round(model.accuracy(train.features, train.labels), 4),
        "test_accuracy": round(model.accuracy(test.features, test.labels), 4),
        "train_size": len(train),
        "test_size": len(test),
    }
    model.save(args.model)
    Path(args.metrics).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(f"trained on {len(train)} rows, tested on {len(test)}")
    print(f"train accuracy: {metrics['train_accuracy']:.3f}")
    print(f"test accuracy: {metrics['test_accuracy']:.3f}")
    if metrics["test_accuracy"] < args.min_accuracy:
        print(f"test accuracy is below --min-accuracy {args.min_accuracy}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
