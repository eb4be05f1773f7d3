"""Predict the species of one flower with a trained model.json (standard library only).

Usage: python3 predict.py [--model model.json] SEPAL_LENGTH SEPAL_WIDTH PETAL_LENGTH PETAL_WIDTH
(measurements in cm; the model defaults to the model.json next to this script).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def predict(model: dict, measurements: list[float]) -> tuple[str, float]:
    scaled = [
        (x - m) / s for x, m, s in zip(measurements, model["mean"], model["scale"], strict=True)
    ]
    row = [*scaled, 1.0]
    weights = model["weights"]
    logits = [sum(row[i] * weights[i][k] for i in range(len(row))) for k in range(len(weights[0]))]
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    best = max(range(len(exps)), key=exps.__getitem__)
    return model["classes"][best], exps[best] / sum(exps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(Path(__file__).with_name("model.json")))
    parser.add_argument("measurements", nargs=4, type=float, metavar="CM")
    args = parser.parse_args(argv)
    model = json.loads(Path(args.model).read_text(encoding="utf-8"))
    species, probability = predict(model, args.measurements)
    print(f"{species} (p={probability:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
