#!/usr/bin/python3
"""Gene text recipes: which parts of a gene's text make gene embeddings that type cells well?

Builds one LSA store per text recipe (`celltyper genes embed --backend lsa --sections ...`, the
default store's settings otherwise: org.Hs.eg.db + GO.db, RefSeq summaries from ../shared/data,
seed 42; 256 dims unless --dims) and measures each:
  - gene level (bench/genes' measures on the genes of the default store): median rank of a
    marker's partner among all genes (texts never name the partner, so this is fair to every
    recipe), and the share of a gene's 10 nearest genes sharing a GO BP term (biased towards
    recipes whose texts contain the GO BP names: reported, not used to choose);
  - cell level: `celltyper cv` on bench/peers' folds (savercat by technology, pancreas Xin ->
    Wang, pbmc3k <-> pbmc68k_reduced, cellbench), GenePT-w features with each store, the default
    classifier (logreg) unless --classifiers; macro-F1 and hierarchical F, mean of the setups.

Recipes (names of --sections; the symbol always leads a text):
  default        name,type,summary,bp,mf,cc (today's recipe)
  name-only      name,type                  (symbol, full name, gene type)
  summary        name,summary               (GenePT's text: the NCBI summary)
  go             name,type,go               (no summary)
  no-bp / no-mf / no-cc   the default less one GO aspect
  aliases        default + the gene table's aliases
  summary-x2     default with the summary written twice (its words weigh double)
  go-bp-x2       default with the GO BP names written twice
  go-max-10      default with at most 10 GO names per aspect (--max-go-terms 10)
(An enrichment section needs texts from a chat model: `genes enrich` cannot run offline here.)

    /usr/bin/python3 bench/recipes/run.py [--build build] [--dims 256] [--recipes a,b,...]
        [--classifiers logreg] [--setups savercat,pancreas,pbmc,cellbench] [--stores-dir build/bench-recipes]

Writes bench/results/recipes.json and bench/results/recipes.md.
"""
import argparse
import importlib.util
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SUMMARIES = os.path.join(ROOT, "..", "shared", "data", "gene-annotations", "human_genes.tsv")

RECIPES = {
    "default": (["--sections", "default"], "name, type, summary, GO BP/MF/CC (today's recipe)"),
    "name-only": (["--sections", "name,type"], "symbol, full name, gene type"),
    "summary": (["--sections", "name,summary"], "full name + RefSeq summary (GenePT's text)"),
    "go": (["--sections", "name,type,go"], "full name, type, GO BP/MF/CC; no summary"),
    "no-bp": (["--sections", "default,bp:0"], "default less GO BP"),
    "no-mf": (["--sections", "default,mf:0"], "default less GO MF"),
    "no-cc": (["--sections", "default,cc:0"], "default less GO CC"),
    "aliases": (["--sections", "default,aliases"], "default + aliases"),
    "summary-x2": (["--sections", "default,summary:2"], "default, summary written twice"),
    "go-bp-x2": (["--sections", "default,bp:2"], "default, GO BP written twice"),
    "go-max-10": (["--sections", "default", "--max-go-terms", "10"], "default, at most 10 GO names per aspect"),
}


_spec = importlib.util.spec_from_file_location("stores_bench", os.path.join(ROOT, "bench", "stores", "run.py"))
stores_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stores_bench)
peers = stores_bench.peers  # bench/peers, loaded by bench/stores


def log(message):
    print(f"[recipes] {message}", file=sys.stderr, flush=True)


def build(celltyper, directory, names, dims, threads):
    """name -> dict(path, seconds, texts stats)."""
    os.makedirs(directory, exist_ok=True)
    out = {}
    for name in names:
        extra, _ = RECIPES[name]
        path = os.path.join(directory, f"{name}-{dims}.h5")
        texts = os.path.join(directory, f"{name}.texts.tsv")
        seconds = None
        if not os.path.exists(path):
            # celltyper's own defaults find org.Hs.eg.db and GO.db, as for the default store
            command = [celltyper, "--quiet", "genes", "embed", "--backend", "lsa", "--dims", str(dims), "--seed", "42",
                       "--threads", str(threads), *extra, "--write-texts", texts, "--out", path]
            if os.path.exists(SUMMARIES):
                command += ["--summaries", SUMMARIES]
            log(f"building {name}: {' '.join(extra)}")
            seconds = stores_bench.timed(command)
        words = []
        with open(texts) as f:
            for line in f:
                if line.startswith("#") or line.startswith("entrez_id\t"):
                    continue
                words.append(len(line.rstrip("\n").split("\t", 2)[2].split()))
        out[name] = dict(path=path, build_seconds=seconds, mean_words=statistics.fmean(words),
                         size_mb=os.path.getsize(path) / 1e6)
    return out


def reproducible_arguments(arguments):
    """The command-line arguments less --build (a local binary's folder), for the Reproduce line."""
    out, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--build":
            skip = True
        elif not argument.startswith("--build="):
            out.append(argument)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--classifiers", default="logreg")
    parser.add_argument("--setups", default="savercat,pancreas,pbmc,cellbench")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--stores-dir", default=os.path.join(ROOT, "build", "bench-recipes"))
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "recipes"))
    args = parser.parse_args()
    celltyper = os.path.join(args.build, "celltyper")
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        sys.exit(f"bench/recipes: unknown recipes {unknown} (known: {', '.join(RECIPES)})")
    started = time.perf_counter()
    stores = build(celltyper, args.stores_dir, names, args.dims, args.threads)
    # Gene level on the genes of the default store (bench/stores' measure; needs its lsa-256 entry).
    default_store = os.path.join(args.build, "share", "celltyper", "gene_embeddings.h5")
    gene_stores = {"lsa-256": (default_store, None)}
    gene_stores.update({name: (s["path"], None) for name, s in stores.items()})
    genes = stores_bench.gene_level(gene_stores)
    genes.pop("lsa-256", None)
    workdir = tempfile.mkdtemp(prefix="celltyper-recipes-")
    setups = peers.prepare(workdir)
    classifiers = args.classifiers.split(",")
    results = {}
    for setup_name in args.setups.split(","):
        setup = setups[setup_name]
        rows = {}
        for name, s in stores.items():
            log(f"{setup_name}: genept with {name}")
            ours, wall, _ = peers.run_celltyper(celltyper, setup, setup_name, classifiers, args.threads, workdir, genes=s["path"],
                                                features="genept")
            rows.update({f"{name} {m.split(':')[0][len('celltyper '):]}": r for m, r in ours.items()
                         if ":" in m and not m.endswith("+hierarchical")})
        results[setup_name] = rows
    report = dict(machine=dict(platform=platform.platform(), cpus=os.cpu_count(), load=os.getloadavg()), dims=args.dims,
                  recipes={n: dict(stores[n], sections=" ".join(RECIPES[n][0]), description=RECIPES[n][1]) for n in names},
                  gene_level=genes, classifiers=classifiers, setups=results, wall_seconds=time.perf_counter() - started,
                  command=" ".join(["/usr/bin/python3", "bench/recipes/run.py", *reproducible_arguments(sys.argv[1:])]))
    stores_bench.write_report(report, args.out, markdown)
    shutil.rmtree(workdir, ignore_errors=True)


def markdown(report):
    classifiers = report["classifiers"]
    setups = list(report["setups"])
    lines = ["# Gene text recipes: which parts of the text make gene embeddings that type cells", "",
             f"Machine: {report['machine']['platform']}, {report['machine']['cpus']} cores; total wall {report['wall_seconds']:.0f} s. "
             f"Stores: LSA, {report['dims']} dims, seed 42, otherwise the default store's sources. "
             f"Reproduce: `{report.get('command', '/usr/bin/python3 bench/recipes/run.py')}`.", "",
             "Cell level: `celltyper cv` with GenePT-w features on the folds of bench/peers (each fold trained on the genes its "
             "held-out cells measured), every other setting at its default; macro-F1 / hierarchical F are means over a setup's "
             "folds, 'mean' averages the setups (hF over the 3 setups with Cell Ontology labels). Gene level: median rank of a "
             "marker's partner among all genes (lower is better; no text names the partner) and the share of the 10 nearest genes "
             "sharing a GO BP term (higher is better, but favours recipes whose texts contain the GO BP names).", ""]
    header = "| recipe | --sections | words per text | build (s) | marker rank | GO BP top-10 | " + \
        " | ".join(f"{c} macro-F1 {s}" for c in classifiers for s in setups) + " | " + \
        " | ".join(f"{c} mean macro-F1 | {c} mean hF | vs default" for c in classifiers) + " |"
    lines += [header, "|---|---|---:|---:|---:|---:|" + "---:|" * (len(classifiers) * len(setups) + 3 * len(classifiers))]
    means = {}
    for name, r in report["recipes"].items():
        for c in classifiers:
            f1 = [report["setups"][s].get(f"{name} {c}", {}).get("mean", {}).get("macro_f1") for s in setups]
            hf = [report["setups"][s].get(f"{name} {c}", {}).get("mean", {}).get("hierarchical_f") for s in setups]
            means[(name, c)] = (statistics.fmean([v for v in f1 if v is not None]),
                                statistics.fmean([v for v in hf if v is not None]) if any(v is not None for v in hf) else None)
    for name, r in report["recipes"].items():
        g = report["gene_level"][name]
        build = f"{r['build_seconds']:.0f}" if r["build_seconds"] is not None else "(existing)"
        cells = []
        for c in classifiers:
            for s in setups:
                v = report["setups"][s].get(f"{name} {c}", {}).get("mean", {}).get("macro_f1")
                cells.append("" if v is None else f"{v:.3f}")
        for c in classifiers:
            f1, hf = means[(name, c)]
            base = means.get(("default", c), (None, None))[0]
            gap = "" if base is None or name == "default" else f"{f1 - base:+.3f}"
            cells += [f"{f1:.3f}", "" if hf is None else f"{hf:.3f}", gap]
        lines.append(f"| {name} | `{r['sections']}` | {r['mean_words']:.0f} | {build} | {g['marker_rank_median']:.1f} | "
                     f"{g['go_bp_top10']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
