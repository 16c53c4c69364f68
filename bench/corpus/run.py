#!/usr/bin/python3
"""Corpus catalogue benchmark (issue 7): catalogue N synthetic h5ad files over HTTP on loopback
(nginx), celltyper vs h5py + fsspec reading the same obs column over the same server, in the
same script. Files are resampled from real cells (bench/io/resample_h5ad: every synthetic cell
is a copy of a real pbmc3k / savercat / ACTINN cell), with mixed sizes (log-uniform) and mixed
storage (uncompressed / gzip).

Measured per tool (median of --repeats runs, each over every file): wall seconds, files/s, and
bytes the server sent (from nginx's access log, the same meter for both tools) against the total
file bytes; requests made.

    /usr/bin/python3 bench/corpus/run.py [--files 20] [--total-mb 200] [--repeats 3]
        [--workdir /tmp/celltyper-corpus-bench] [--build build]

Writes bench/results/corpus.json and bench/results/corpus.md.
"""
import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "data")
SOURCES = [  # (file under ../shared/data, label column)
    ("pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad", "celltype"),
    ("savercat-pbmc-3tech/pbmc_prep_3tech.h5ad", "celltype"),
    ("actinn-tabula-muris-mouse/actinn_train_mouse.h5ad", "celltype"),
]

FSSPEC_READ = r"""
import sys, time, json
import fsspec, h5py
from anndata._io.specs import read_elem
urls = sys.argv[2:]
block_size = int(sys.argv[1])
t = time.perf_counter()
fs = fsspec.filesystem("http")
counts = {}
for url in urls:
    with fs.open(url, "rb", block_size=block_size) as remote:
        with h5py.File(remote, "r") as f:
            column = read_elem(f["obs"]["celltype"])
    for label, n in column.value_counts().items():
        counts[label] = counts.get(label, 0) + int(n)
print(json.dumps({"seconds": time.perf_counter() - t, "counts": counts}))
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    def __init__(self, root, workdir):
        self.dir = os.path.join(workdir, "nginx")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.port = free_port()
        self.log = os.path.join(self.dir, "access.log")
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as out:
            out.write(f"""daemon off; master_process off; worker_processes 1; pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  log_format bytes '$status $body_bytes_sent $request';
  access_log {self.log} bytes;
  client_body_temp_path {self.dir}/cb; proxy_temp_path {self.dir}/p; fastcgi_temp_path {self.dir}/f;
  uwsgi_temp_path {self.dir}/u; scgi_temp_path {self.dir}/s;
  default_type application/octet-stream; sendfile on; keepalive_requests 100000;
  server {{ listen 127.0.0.1:{self.port}; location /corpus/ {{ alias {os.path.abspath(root)}/; }} }}
}}
""")
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen([binary, "-c", conf, "-p", self.dir + "/", "-e", f"{self.dir}/error.log"])
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.025)
        raise SystemExit("nginx did not start")

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/corpus/{name}"

    def meter(self):
        """Requests and body bytes logged so far."""
        requests = sent = 0
        with open(self.log) as log:
            for line in log:
                parts = line.split(" ", 2)
                requests += 1
                sent += int(parts[1])
        return requests, sent

    def stop(self):
        self.process.terminate()
        self.process.wait()


def make_corpus(args, directory):
    resample = os.path.join(args.build, "bench", "resample_h5ad")
    if not os.path.exists(resample):
        raise SystemExit(f"{resample} is missing: build the project first (cmake --build build)")
    os.makedirs(directory, exist_ok=True)
    rng = random.Random(7)
    # Log-uniform cell counts scaled so that the corpus is about --total-mb (about 2.2 kB per cell).
    weights = [math.exp(rng.uniform(math.log(1), math.log(30))) for _ in range(args.files)]
    total_cells = args.total_mb * 1e6 / 2200
    names = []
    for i, weight in enumerate(weights):
        source, label = SOURCES[i % len(SOURCES)]
        cells = max(200, int(total_cells * weight / sum(weights)))
        gzip = 4 if i % 2 else 0
        name = f"synthetic_{i:04d}.h5ad"
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            subprocess.run([resample, os.path.join(SHARED, source), path, str(cells), "--gzip", str(gzip), "--seed", str(i),
                            "--label", label], check=True, capture_output=True)
        names.append(name)
    return names


def run_celltyper(args, nginx, urls, threads, out):
    shutil.rmtree(out, ignore_errors=True)
    before = nginx.meter()
    t = time.perf_counter()
    result = subprocess.run([os.path.join(args.build, "celltyper"), "catalog", *urls, "--obs", "celltype", "--out", out, "--threads",
                             str(threads), "--no-resume", "-q"], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    after = nginx.meter()
    query = subprocess.run([os.path.join(args.build, "celltyper"), "query", out,
                            "SELECT category, sum(n_cells) AS n FROM obs_categories GROUP BY category ORDER BY category", "--json"],
                           check=True, capture_output=True, text=True)
    counts = {row["category"]: row["n"] for row in json.loads(query.stdout)}
    return {"seconds": seconds, "requests": after[0] - before[0], "bytes_sent": after[1] - before[1], "counts": counts,
            "summary": result.stdout.strip()}


def run_fsspec(nginx, urls, block_size):
    before = nginx.meter()
    out = subprocess.run(["/usr/bin/python3", "-c", FSSPEC_READ, str(block_size), *urls], check=True, capture_output=True, text=True)
    after = nginx.meter()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update({"requests": after[0] - before[0], "bytes_sent": after[1] - before[1]})
    return result


def median_run(runs):
    best = dict(runs[len(runs) // 2])
    best["seconds"] = statistics.median(r["seconds"] for r in runs)
    best["bytes_sent"] = statistics.median(r["bytes_sent"] for r in runs)
    best["requests"] = statistics.median(r["requests"] for r in runs)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--total-mb", type=float, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/celltyper-corpus-bench")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    args = parser.parse_args()
    for source, _ in SOURCES:
        if not os.path.exists(os.path.join(SHARED, source)):
            raise SystemExit(f"benchmark needs ../shared/data/{source}")

    corpus = os.path.join(args.workdir, f"corpus_{args.files}_{int(args.total_mb)}")
    names = make_corpus(args, corpus)
    file_bytes = sum(os.path.getsize(os.path.join(corpus, n)) for n in names)
    nginx = Nginx(corpus, args.workdir)
    try:
        urls = [nginx.url(n) for n in names]
        configs = [("celltyper catalog --threads 1", lambda: run_celltyper(args, nginx, urls, 1, os.path.join(args.workdir, "catalog"))),
                   ("celltyper catalog --threads 2", lambda: run_celltyper(args, nginx, urls, 2, os.path.join(args.workdir, "catalog"))),
                   ("h5py + fsspec (default 5 MiB blocks)", lambda: run_fsspec(nginx, urls, 5 * 2**20)),
                   ("h5py + fsspec (256 KiB blocks)", lambda: run_fsspec(nginx, urls, 256 * 2**10))]
        for _, run in configs:  # warm-up (page cache, imports)
            run()
        results = []
        for label, run in configs:
            best = median_run([run() for _ in range(args.repeats)])
            best["tool"] = label
            results.append(best)
    finally:
        nginx.stop()
    reference = results[0]["counts"]
    for r in results:
        if {k: int(v) for k, v in r["counts"].items()} != {k: int(v) for k, v in reference.items()}:
            raise SystemExit(f"{r['tool']} counted different cells per type: {r['counts']} vs {reference}")

    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": sys.version.split()[0],
               "kernel": platform.release()}
    report = {"files": len(names), "file_bytes": file_bytes, "repeats": args.repeats, "machine": machine, "results": results,
              "cells_per_type": reference}
    os.makedirs(args.results, exist_ok=True)
    with open(os.path.join(args.results, "corpus.json"), "w") as out:
        json.dump(report, out, indent=2)
    lines = [f"Catalogue of {len(names)} synthetic h5ad files ({file_bytes / 1e6:.0f} MB, resampled real cells, half gzip) "
             f"over HTTP on loopback (nginx), obs column `celltype`; median of {args.repeats} runs; {machine['cores']} cores.",
             "", "| tool | seconds | files/s | requests | MB sent | % of file bytes |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['tool']} | {r['seconds']:.2f} | {len(names) / r['seconds']:.1f} | {int(r['requests'])} | "
                     f"{r['bytes_sent'] / 1e6:.2f} | {100 * r['bytes_sent'] / file_bytes:.2f}% |")
    with open(os.path.join(args.results, "corpus.md"), "w") as out:
        out.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
