#!/usr/bin/python3
"""Reference flat metrics from scikit-learn for celltyper's metrics tests.

Usage: sklearn_metrics.py FILE.tsv
FILE.tsv: header `truth<TAB>prediction`, then one cell per line.
Prints one JSON object: accuracy and macro / weighted precision, recall and F1
(zero_division=0, labels = union of truth and prediction, as celltyper computes them),
plus the per-class table. Floats are printed with repr precision (exact round trip).
"""
import csv
import json
import sys

from sklearn.metrics import accuracy_score, precision_recall_fscore_support


def main(path):
    truth, prediction = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader)
        assert header == ["truth", "prediction"], header
        for row in reader:
            truth.append(row[0])
            prediction.append(row[1])
    result = {"accuracy": accuracy_score(truth, prediction)}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            truth, prediction, average=average, zero_division=0)
        result[average] = {"precision": precision, "recall": recall, "f1": f1}
    labels = sorted(set(truth) | set(prediction))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, prediction, labels=labels, average=None, zero_division=0)
    result["per_class"] = [
        {"label": label, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for label, p, r, f, s in zip(labels, precision, recall, f1, support)]
    json.dump(result, sys.stdout, default=float)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
