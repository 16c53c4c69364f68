#!/usr/bin/python3
"""Classifier training benchmark: celltyper's MLP (libtorch) and XGBoost back ends.

Synthetic "embeddings" (bench/model/train_bench.cpp): 10 classes whose centres lie in a random
32-dim subspace of 256 dims, unit Gaussian noise, long-tailed class sizes (macro-F1 around 0.88
for an MLP); a validation set of min(N/10, 100k) cells.

  1. MLP seconds per epoch on --big cells (1M) with 1 and --threads threads (median of the
     epochs after the first; default hyperparameters: 2 x 256 hidden, batch 256, AdamW);
  2. the same MLP in PyTorch (python3-torch: nn.Sequential, AdamW, OneCycle, the same libtorch
     1.13) on --medium cells (100k), 1 and --threads threads, against celltyper on the same size;
  3. XGBoost (hist, depth 6, eta 0.1) seconds per round on --big cells (a few rounds), and on
     --medium cells: rounds and seconds until it first reaches the MLP's validation macro-F1
     (or its best within --xgb-rounds), against the MLP's seconds to that macro-F1;
  4. prediction of 100k cells x 256 dims (MLP and XGBoost), median of 5.

    /usr/bin/python3 bench/model/run.py [--build build] [--threads 2] [--big 1000000] [--medium 100000]

Writes bench/model/results.json and bench/model/results.md.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))

REFERENCE = r"""
import sys, time, json
import numpy as np, torch
from sklearn.metrics import f1_score
n, dims, classes, threads, epochs = map(int, sys.argv[1:6])
torch.set_num_threads(threads)
# The same generator as train_bench.cpp (numpy draws, the same distribution).
rng = np.random.default_rng(42)
low = 0.2 * rng.standard_normal((classes, 32), dtype=np.float32)
proj = rng.standard_normal((32, dims), dtype=np.float32) / np.sqrt(32)
centres = low @ proj
w = 1.0 / np.arange(1, classes + 1); w /= w.sum()
def draw(m, seed):
    r = np.random.default_rng(seed)
    y = r.choice(classes, size=m, p=w); y[:classes] = np.arange(classes)
    return centres[y] + r.standard_normal((m, dims), dtype=np.float32), y
x, y = draw(n, 1); xv, yv = draw(min(max(n // 10, 1000), 100000), 2)
mean, sd = x.mean(0), x.std(0); x = (x - mean) / sd; xv = ((xv - mean) / sd).astype(np.float32)
X, Y, XV = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64)), torch.from_numpy(xv)
torch.manual_seed(1)
model = torch.nn.Sequential(torch.nn.Linear(dims, 256), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                            torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(256, classes))
counts = np.bincount(y, minlength=classes)
loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(n / (classes * counts), dtype=torch.float32))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
bs = 256; steps = (n + bs - 1) // bs
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps * epochs, pct_start=0.05, anneal_strategy="cos")
out = []
for e in range(epochs):
    t = time.perf_counter(); model.train(); perm = torch.randperm(n)
    for s in range(steps):
        idx = perm[s * bs:(s + 1) * bs]
        opt.zero_grad(); loss = loss_fn(model(X[idx]), Y[idx]); loss.backward(); opt.step(); sched.step()
    seconds = time.perf_counter() - t
    model.eval()
    with torch.no_grad(): pred = model(XV).argmax(1).numpy()
    out.append({"epoch": e + 1, "seconds": seconds, "validation_macro_f1": float(f1_score(yv, pred, average="macro"))})
print(json.dumps({"tool": "pytorch", "torch": torch.__version__, "n": n, "threads": threads, "epochs": out}))
"""


def run_bench(build, *args):
    command = [os.path.join(build, "bench", "train_bench"), *map(str, args)]
    print("+", " ".join(command), file=sys.stderr, flush=True)
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return json.loads(done.stdout)


def run_reference(*args):
    command = ["/usr/bin/python3", "-c", REFERENCE, *map(str, args)]
    print("+ pytorch reference", *args, file=sys.stderr, flush=True)
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout)


def epoch_seconds(epochs):
    """Median seconds per epoch after the first (the first includes warm-up)."""
    later = [e["seconds"] for e in epochs[1:]] or [epochs[0]["seconds"]]
    return statistics.median(later)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--big", type=int, default=1000000)
    parser.add_argument("--medium", type=int, default=100000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--xgb-big-rounds", type=int, default=3)
    parser.add_argument("--xgb-rounds", type=int, default=300)
    args = parser.parse_args()
    load = os.getloadavg()
    results = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                           "load_average_at_start": load, "python": platform.python_version()},
               "threads": args.threads, "dims": 256, "classes": 10}
    thread_counts = sorted({1, args.threads})

    # 1. MLP on the big set.
    results["mlp_big"] = [run_bench(args.build, "mlp", args.big, 256, 10, t, args.epochs) for t in thread_counts]
    # 2. celltyper vs PyTorch on the medium set.
    results["mlp_medium"] = [run_bench(args.build, "mlp", args.medium, 256, 10, t, args.epochs) for t in thread_counts]
    results["pytorch_medium"] = [run_reference(args.medium, 256, 10, t, args.epochs) for t in thread_counts]
    # 3. XGBoost: seconds per round on the big set; rounds to the MLP's macro-F1 on the medium set.
    results["xgboost_big"] = run_bench(args.build, "xgboost", args.big, 256, 10, args.threads, args.xgb_big_rounds)
    results["xgboost_medium"] = run_bench(args.build, "xgboost", args.medium, 256, 10, args.threads, args.xgb_rounds,
                                          "early_stopping_rounds=30")
    # 4. Prediction of 100k cells.
    results["predict"] = [run_bench(args.build, "predict", 100000, 256, 10, args.threads, 5),
                          run_bench(args.build, "predict", 100000, 256, 10, args.threads, 5, "n_estimators=100")]
    results["load_average_at_end"] = os.getloadavg()

    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(results, f, indent=1)

    lines = ["# Classifier training benchmark (bench/model/run.py)", "",
             f"Machine: {results['machine']['cores']} cores ({results['machine']['cpu']}), load average at start "
             f"{load[0]:.1f}, end {results['load_average_at_end'][0]:.1f}. "
             "Synthetic 256-dim embeddings, 10 long-tailed classes; validation = 10% of N (at most 100k).", "",
             "## MLP (2 x 256 hidden, batch 256, AdamW), seconds per epoch", "",
             "| tool | cells | threads | s / epoch | validation macro-F1 by epoch |", "|---|---|---|---|---|"]
    for row in results["mlp_big"] + results["mlp_medium"]:
        f1 = ", ".join(f"{e['validation_macro_f1']:.3f}" for e in row["epochs"])
        lines.append(f"| celltyper | {row['n']:,} | {row['threads']} | {epoch_seconds(row['epochs']):.1f} | {f1} |")
    for row in results["pytorch_medium"]:
        f1 = ", ".join(f"{e['validation_macro_f1']:.3f}" for e in row["epochs"])
        lines.append(f"| PyTorch {row['torch']} (Python) | {row['n']:,} | {row['threads']} | {epoch_seconds(row['epochs']):.1f} | {f1} |")

    big = results["xgboost_big"]
    medium = results["xgboost_medium"]
    mlp_medium = max(results["mlp_medium"], key=lambda r: r["threads"])
    target = mlp_medium["epochs"][0]["validation_macro_f1"]
    reached = next((e for e in medium["epochs"] if e["validation_macro_f1"] >= target), None)
    best = max(medium["epochs"], key=lambda e: e["validation_macro_f1"])
    lines += ["", "## XGBoost (hist, depth 6, eta 0.1, subsample 0.8, colsample 0.5) vs MLP", "",
              f"- {big['n']:,} cells, {args.threads} threads: {big['median_epoch_seconds']:.1f} s per round "
              f"(10 trees), validation macro-F1 after {len(big['epochs'])} rounds {big['epochs'][-1]['validation_macro_f1']:.3f}; "
              f"the MLP's first epoch on the same cells: {max(results['mlp_big'], key=lambda r: r['threads'])['epochs'][0]['seconds']:.0f} s, "
              f"macro-F1 {max(results['mlp_big'], key=lambda r: r['threads'])['epochs'][0]['validation_macro_f1']:.3f}.",
              f"- {medium['n']:,} cells, {args.threads} threads: the MLP reaches macro-F1 {target:.3f} after one epoch "
              f"({mlp_medium['epochs'][0]['elapsed']:.1f} s); XGBoost "
              + (f"reaches it at round {reached['epoch']} ({reached['elapsed']:.1f} s)" if reached else
                 f"never does in {len(medium['epochs'])} rounds ({medium['fit_seconds']:.0f} s): best {best['validation_macro_f1']:.3f} "
                 f"at round {best['epoch']} ({best['elapsed']:.1f} s)") + "."]
    lines += ["", "## Prediction, 100,000 cells x 256 dims", "", "| classifier | threads | median s | cells / s |", "|---|---|---|---|"]
    for row in results["predict"]:
        label = "mlp (2 x 256)" if row["classifier"] == "mlp" else "xgboost (100 rounds x 10 classes)"
        lines.append(f"| {label} | {row['threads']} | {row['median_predict_seconds']:.3f} | {row['cells_per_second']:,.0f} |")
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
