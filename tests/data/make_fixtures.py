#!/usr/bin/python3
"""Generate the small h5ad / 10x test fixtures for celltyper.

Run from anywhere:  /usr/bin/python3 tests/data/make_fixtures.py

Deterministic (fixed seeds, gzip mtime=0); rerunning rewrites the same content.
Writes into tests/data/h5ad/ and tests/data/tenx/ next to this script.
Needs the Debian packages python3-anndata (0.8.0), python3-h5py, python3-numpy,
python3-scipy, python3-pandas.

Every good .h5ad gets a <stem>.expected.json built from the *source* arrays in
this script (not by reading the file back); tests/io/anndata_check.py then
verifies each file against its JSON with anndata. The JSON schema is described
in tests/data/README.md.
"""
import gzip
import io
import json
import os
import shutil
import sys
import warnings

import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

import anndata as ad
from anndata.experimental import write_elem

warnings.simplefilter("ignore")

HERE = os.path.dirname(os.path.abspath(__file__))
H5AD = os.path.join(HERE, "h5ad")
TENX = os.path.join(HERE, "tenx")
SCHEMA = "celltyper-expected/1"

# Real human Ensembl gene ids (GRCh38).
ENSEMBL = {
    "CD3E": "ENSG00000198851", "MS4A1": "ENSG00000156738", "LYZ": "ENSG00000090382",
    "CD14": "ENSG00000170458", "NKG7": "ENSG00000105374", "GNLY": "ENSG00000115523",
    "CD79A": "ENSG00000105369", "HBB": "ENSG00000244734", "IL7R": "ENSG00000168685",
    "S100A8": "ENSG00000143546", "CCR7": "ENSG00000126353", "CD8A": "ENSG00000153563",
    "FCGR3A": "ENSG00000203747", "PPBP": "ENSG00000163736",
}

# --------------------------------------------------------------------------
# JSON helpers
# --------------------------------------------------------------------------


def jnum(v, kind):
    """JSON value for one numeric element. kind: numpy dtype kind."""
    if kind == "f":
        v = float(v)
        if np.isnan(v):
            return "NaN"
        if np.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if kind == "b":
        return bool(v)
    return int(v)


def dense_json(arr):
    arr = np.asarray(arr)
    k = arr.dtype.kind
    return [[jnum(v, k) for v in row] for row in arr]


def matrix_json(dense, encoding, *, dtype=None, index_dtype="int32", nnz=None,
                compression=None, chunked=None):
    """Expected-JSON object for a 2-D matrix (X, raw/X, a layer, an obsm entry)."""
    dense = np.asarray(dense)
    d = {"encoding": encoding, "dtype": str(dtype or dense.dtype),
         "shape": list(dense.shape)}
    if encoding in ("csr_matrix", "csc_matrix"):
        d["index_dtype"] = index_dtype
        d["indptr_dtype"] = index_dtype
        d["nnz"] = int(np.count_nonzero(dense) if nnz is None else nnz)
    d["compression"] = compression
    if chunked is None:
        # anndata 0.8 writes sparse datasets with maxshape=(None,) -> always chunked;
        # dense arrays are contiguous unless compressed.
        chunked = encoding != "array" or compression is not None
    d["chunked"] = bool(chunked)
    d["dense"] = dense_json(dense)
    return d


def column_json(name, series):
    """Expected-JSON object for one dataframe column, from the source pandas object."""
    dt = series.dtype
    c = {"name": name}
    if isinstance(dt, pd.CategoricalDtype):
        cat = series.array
        c["kind"] = "categorical"
        c["categories"] = [str(x) for x in cat.categories]
        c["ordered"] = bool(cat.ordered)
        c["codes"] = [int(x) for x in cat.codes]
        c["values"] = [None if code < 0 else str(cat.categories[code]) for code in cat.codes]
    elif isinstance(dt, pd.BooleanDtype):
        c["kind"] = "nullable-bool"
        c["dtype"] = "bool"
        c["values"] = [None if pd.isna(v) else bool(v) for v in series]
    elif isinstance(dt, pd.api.extensions.ExtensionDtype) and dt.kind in "iu":
        c["kind"] = "nullable-int"
        c["dtype"] = str(dt.numpy_dtype)
        c["values"] = [None if pd.isna(v) else int(v) for v in series]
    elif dt == object:
        c["kind"] = "string"
        c["values"] = [str(v) for v in series]
    elif dt.kind == "b":
        c["kind"] = "bool"
        c["values"] = [bool(v) for v in series]
    elif dt.kind in "iu":
        c["kind"] = "int"
        c["dtype"] = str(dt)
        c["values"] = [int(v) for v in series]
    elif dt.kind == "f":
        c["kind"] = "float"
        c["dtype"] = str(dt)
        c["values"] = [jnum(v, "f") for v in series]
    else:
        raise TypeError(f"unsupported column {name}: {dt}")
    return c


def df_json(df):
    return {
        "index_name": df.index.name if df.index.name is not None else "_index",
        "index": [str(x) for x in df.index],
        "column_order": [str(c) for c in df.columns],
        "columns": [column_json(str(c), df[c]) for c in df.columns],
    }


def write_json(path, obj):
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=1, allow_nan=False)
        fh.write("\n")


def expected(fixture, notes, X, obs, var, *, raw=None, layers=(), obsm=()):
    """Top-level expected JSON. X/raw X/layers/obsm are matrix_json dicts."""
    n_obs, n_vars = len(obs), len(var)
    e = {
        "schema": SCHEMA,
        "fixture": fixture,
        "written_with": f"anndata {ad.__version__}",
        "notes": notes,
        "shape": [n_obs, n_vars],
        "X": X,
        "obs": df_json(obs),
        "var": df_json(var),
        "raw": raw,
        "layers": [dict(name=k, **v) for k, v in sorted(dict(layers).items())],
        "obsm": [dict(name=k, **v) for k, v in sorted(dict(obsm).items())],
    }
    return e


# --------------------------------------------------------------------------
# Source data
# --------------------------------------------------------------------------


def barcodes(n, seed):
    rng = np.random.default_rng(seed)
    bcs = set()
    while len(bcs) < n:
        bcs.add("".join(rng.choice(list("ACGT"), 16)) + "-1")
    return sorted(bcs)


def poisson_counts(cell_types, genes, markers, seed, base=0.25, high=8.0, boost=None):
    rng = np.random.default_rng(seed)
    lam = np.full((len(cell_types), len(genes)), base)
    for i, ct in enumerate(cell_types):
        if ct is None:
            lam[i, :] = 0.0  # empty droplet: all-zero row
            continue
        for g in markers[ct]:
            if g in genes:
                lam[i, genes.index(g)] = high
    for g, factor in (boost or {}).items():
        if g in genes:
            lam[:, genes.index(g)] *= factor
    if "HBB" in genes:
        lam[:, genes.index("HBB")] = 0.0  # all-zero gene (no erythrocytes in PBMC)
    return rng.poisson(lam).astype(np.int64)


MARKERS = {
    "T": ["CD3E", "IL7R", "CCR7", "CD8A"],
    "B": ["MS4A1", "CD79A"],
    "Mono": ["LYZ", "CD14", "S100A8", "FCGR3A"],
    "NK": ["NKG7", "GNLY", "FCGR3A"],
    "Platelet": ["PPBP"],
}

# Dataset A: 12 cells x 10 genes, shared by all X-encoding variants and the 10x fixtures.
A_GENES = ["CD3E", "MS4A1", "LYZ", "CD14", "NKG7", "GNLY", "CD79A", "HBB", "IL7R", "S100A8"]
A_TYPES = ["T", "T", "B", "Mono", "NK", None, "T", "B", "Mono", "NK", "T", "Mono"]
A_BARCODES = barcodes(len(A_TYPES), seed=101)
A_COUNTS = poisson_counts(A_TYPES, A_GENES, MARKERS, seed=7, boost={"LYZ": 3.0})
A_EMPTY_CELL = 5
A_ZERO_GENE = A_GENES.index("HBB")


def a_obs():
    cats = ["B", "Mono", "NK", "T"]
    return pd.DataFrame(
        {"cell_type": pd.Categorical(A_TYPES, categories=cats, ordered=False)},
        index=pd.Index(A_BARCODES))


def a_var():
    return pd.DataFrame({"gene_ids": [ENSEMBL[g] for g in A_GENES]}, index=pd.Index(A_GENES))


def check_a():
    c = A_COUNTS
    zero_rows = np.where(c.sum(1) == 0)[0].tolist()
    zero_cols = np.where(c.sum(0) == 0)[0].tolist()
    assert zero_rows == [A_EMPTY_CELL], zero_rows
    assert zero_cols == [A_ZERO_GENE], zero_cols


# --------------------------------------------------------------------------
# h5ad writers
# --------------------------------------------------------------------------

def to_encoding(dense, encoding):
    if encoding == "csr_matrix":
        return sp.csr_matrix(dense)
    if encoding == "csc_matrix":
        return sp.csc_matrix(dense)
    return np.ascontiguousarray(dense)


def rewrite_dataset(group, name, new_data, **kwargs):
    """Replace group[name] by new_data (keeping attributes)."""
    attrs = dict(group[name].attrs)
    del group[name]
    ds = group.create_dataset(name, data=new_data, **kwargs)
    for k, v in attrs.items():
        ds.attrs[k] = v


def write_variant(stem, dense, encoding, *, compression=None, idx64=False, chunks=None,
                  notes=""):
    """One X-encoding variant of dataset A (or a modification of it)."""
    path = os.path.join(H5AD, stem + ".h5ad")
    obs, var = a_obs(), a_var()
    exp_obs, exp_var = obs.copy(), var.copy()
    X = to_encoding(dense, encoding)
    adata = ad.AnnData(X, obs=obs, var=var, dtype=dense.dtype)
    kw = {"compression": compression} if compression else {}
    adata.write_h5ad(path, **kw)
    chunked = None
    if idx64:
        # Rewrite indices/indptr as int64 and data contiguous (anndata writes int32, chunked).
        with h5py.File(path, "r+") as f:
            g = f["X"]
            for name in ("data", "indices", "indptr"):
                arr = g[name][()]
                if name != "data":
                    arr = arr.astype(np.int64)
                rewrite_dataset(g, name, arr)
        chunked = False
    if chunks is not None:
        # Dense X re-written by anndata's own writer with explicit chunking, no compression.
        with h5py.File(path, "r+") as f:
            del f["X"]
            write_elem(f, "X", np.ascontiguousarray(dense), dataset_kwargs={"chunks": chunks})
        chunked = True
    Xj = matrix_json(dense, encoding, index_dtype="int64" if idx64 else "int32",
                     compression=compression, chunked=chunked)
    write_json(os.path.join(H5AD, stem + ".expected.json"),
               expected(stem + ".h5ad", notes, Xj, exp_obs, exp_var))
    return path


def make_encoding_variants():
    made = []
    dtypes = ["float32", "float64", "int32", "int64", "uint16", "uint32"]
    for enc, short in (("csr_matrix", "csr"), ("csc_matrix", "csc"), ("array", "dense")):
        for dt in dtypes:
            stem = f"{short}_{dt}"
            made.append(write_variant(
                stem, A_COUNTS.astype(dt), enc,
                notes=f"dataset A (12 cells x 10 genes, cell 5 all-zero, gene HBB all-zero), "
                      f"X {enc} {dt}, written by anndata {ad.__version__}"))
    made.append(write_variant(
        "csr_float32_idx64", A_COUNTS.astype("float32"), "csr_matrix", idx64=True,
        notes="dataset A, X csr float32; indices+indptr rewritten as int64 with h5py, "
              "all three X datasets contiguous (not chunked)"))
    made.append(write_variant(
        "csc_float64_idx64", A_COUNTS.astype("float64"), "csc_matrix", idx64=True,
        notes="dataset A, X csc float64; indices+indptr rewritten as int64 with h5py, contiguous"))
    made.append(write_variant(
        "csr_float32_gzip", A_COUNTS.astype("float32"), "csr_matrix", compression="gzip",
        notes="dataset A, X csr float32, every dataset gzip-compressed (write_h5ad(compression='gzip'))"))
    made.append(write_variant(
        "csc_int32_gzip", A_COUNTS.astype("int32"), "csc_matrix", compression="gzip",
        notes="dataset A, X csc int32, gzip"))
    made.append(write_variant(
        "dense_float64_gzip", A_COUNTS.astype("float64"), "array", compression="gzip",
        notes="dataset A, X dense float64, gzip (chunked)"))
    made.append(write_variant(
        "csr_float32_lzf", A_COUNTS.astype("float32"), "csr_matrix", compression="lzf",
        notes="dataset A, X csr float32, every dataset LZF-compressed (write_h5ad(compression='lzf'): h5py's filter 32000)"))
    made.append(write_variant(
        "dense_float32_lzf", A_COUNTS.astype("float32"), "array", compression="lzf",
        notes="dataset A, X dense float32, LZF (chunked)"))
    made.append(write_variant(
        "dense_float32_chunked", A_COUNTS.astype("float32"), "array", chunks=(5, 4),
        notes="dataset A, X dense float32, chunked (5,4) without compression "
              "(X re-written with anndata.experimental.write_elem(dataset_kwargs={'chunks':(5,4)}))"))
    # Big values that overflow int32 (but are exactly representable in float32).
    big = A_COUNTS.astype("int64")
    big[0, 0] = 3_000_000_000
    big[3, 2] = 2_147_483_648
    made.append(write_variant(
        "csr_int64_bigvals", big, "csr_matrix",
        notes="dataset A with X[0,0]=3000000000 and X[3,2]=2147483648 (> INT32_MAX), csr int64"))
    bigu = A_COUNTS.astype("uint32")
    bigu[0, 0] = 4_000_000_000
    made.append(write_variant(
        "csr_uint32_bigvals", bigu, "csr_matrix",
        notes="dataset A with X[0,0]=4000000000 (> INT32_MAX), csr uint32"))
    u16 = A_COUNTS.astype("uint16")
    u16[1, 0] = 65535
    made.append(write_variant(
        "dense_uint16_max", u16, "array",
        notes="dataset A with X[1,0]=65535 (uint16 max), dense uint16"))
    return made


# Dataset "full": 16 cells, raw 14 genes, X = 9 genes (log-normalised float32).
F_RAW_GENES = ["CD3E", "IL7R", "CCR7", "CD8A", "MS4A1", "CD79A", "LYZ", "CD14", "S100A8",
               "FCGR3A", "NKG7", "GNLY", "PPBP", "HBB"]
F_X_GENES = ["CD3E", "CCR7", "MS4A1", "CD79A", "LYZ", "S100A8", "NKG7", "GNLY", "PPBP"]
F_TYPES = ["T", "B", "Mono", "NK", "T", "Mono", "Platelet", "T", "B", "NK", "Mono", None,
           "T", "B", "Mono", "NK"]


def make_full():
    n = len(F_TYPES)
    raw_counts = poisson_counts(F_TYPES, F_RAW_GENES, MARKERS, seed=11, base=0.4,
                                boost={"LYZ": 3.0, "S100A8": 2.0})
    empty = F_TYPES.index(None)
    assert np.where(raw_counts.sum(1) == 0)[0].tolist() == [empty]
    assert raw_counts[:, F_RAW_GENES.index("HBB")].sum() == 0
    cols = [F_RAW_GENES.index(g) for g in F_X_GENES]
    counts = raw_counts[:, cols]
    tot = raw_counts.sum(1, keepdims=True).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(tot > 0, counts / np.where(tot > 0, tot, 1) * 1e4, 0.0)
    X = np.log1p(norm).astype(np.float32)

    rng = np.random.default_rng(23)
    bcs = barcodes(n, seed=202)
    cell_type = pd.Categorical(F_TYPES, categories=["B", "Mono", "NK", "Platelet", "T"])
    stage_vals = ["G1", "S", "G2M", None, "G1", "G1", "S", "G2M", "G1", "S", "G1", None,
                  "G2M", "G1", "S", "G1"]
    stage = pd.Categorical(stage_vals, categories=["G1", "S", "G2M"], ordered=True)
    total_counts = raw_counts.sum(1).astype(np.float64)
    n_genes = (raw_counts > 0).sum(1).astype(np.int32)
    pct_mito = (rng.uniform(0, 12, n)).astype(np.float32)
    score = rng.normal(0, 1, n).round(6)
    score[4] = np.nan
    is_doublet = np.array([False] * n)
    is_doublet[[3, 13]] = True
    donor_age = pd.array([34, 34, 51, 51, None, 29, 29, 34, 51, 29, 34, None, 29, 51, 34, 34],
                         dtype="Int64")
    qc_pass = pd.array([True, True, None, True, False, True, True, True, False, True, None,
                        False, True, True, True, True], dtype="boolean")
    sample_label = [f"donor{'ABC'[i % 3]}_cell{i:02d}" for i in range(n)]  # unique -> string-array
    obs = pd.DataFrame({
        # custom (non-alphabetical, non-kind-grouped) column order
        "cell_type": cell_type,
        "total_counts": total_counts,
        "sample_label": sample_label,
        "n_genes": n_genes,
        "stage": stage,
        "is_doublet": is_doublet,
        "pct_mito": pct_mito,
        "donor_age": donor_age,
        "qc_pass": qc_pass,
        "score": score,
    }, index=pd.Index(bcs, name="barcode"))

    def var_df(genes, extra):
        df = pd.DataFrame({"gene_ids": [ENSEMBL[g] for g in genes],
                           "feature_types": pd.Categorical(["Gene Expression"] * len(genes))},
                          index=pd.Index(genes))
        for k, v in extra.items():
            df[k] = v
        return df

    var = var_df(F_X_GENES, {"mean_counts": counts.mean(0).astype(np.float64),
                             "n_cells": (counts > 0).sum(0).astype(np.int64)})
    raw_var = var_df(F_RAW_GENES, {"highly_variable": np.array([g in F_X_GENES for g in F_RAW_GENES])})
    pca = rng.normal(0, 3, (n, 3)).astype(np.float32)
    umap = rng.normal(0, 5, (n, 2)).astype(np.float64)
    layer_counts = counts.astype(np.float32)
    raw_X = raw_counts.astype(np.float32)

    made = []
    for stem, comp in (("full", None),):  # a gzip twin would be ~130 KB (chunk B-trees); gzip is covered by *_gzip
        path = os.path.join(H5AD, stem + ".h5ad")
        e_obs, e_var, e_rawvar = obs.copy(), var.copy(), raw_var.copy()
        raw_ad = ad.AnnData(sp.csr_matrix(raw_X), var=raw_var.copy(), obs=obs.copy(),
                            dtype=np.float32)
        adata = ad.AnnData(sp.csr_matrix(X), obs=obs.copy(), var=var.copy(), dtype=np.float32,
                           layers={"counts": sp.csr_matrix(layer_counts)},
                           obsm={"X_pca": pca, "X_umap": umap})
        adata.raw = raw_ad
        kw = {"compression": comp} if comp else {}
        adata.write_h5ad(path, **kw)
        notes = ("16 cells x 9 genes; X csr float32 log1p(CP10k) (non-integer floats), "
                 "layers['counts'] csr float32, raw = 14 genes csr float32 counts + raw/var, "
                 "obsm X_pca float32 (16x3) and X_umap float64 (16x2); obs has every column kind "
                 "in a custom order and index name 'barcode'; cell 11 all-zero; raw gene HBB all-zero")
        if comp:
            notes += "; all datasets gzip-compressed"
        e = expected(
            stem + ".h5ad", notes,
            matrix_json(X, "csr_matrix", compression=comp), e_obs, e_var,
            raw={"shape": list(raw_X.shape),
                 "X": matrix_json(raw_X, "csr_matrix", compression=comp),
                 "var": df_json(e_rawvar)},
            layers={"counts": matrix_json(layer_counts, "csr_matrix", compression=comp)},
            obsm={"X_pca": matrix_json(pca, "array", compression=comp),
                  "X_umap": matrix_json(umap, "array", compression=comp)})
        write_json(os.path.join(H5AD, stem + ".expected.json"), e)
        made.append(path)
    return made


def make_zero_cells():
    stem = "zero_cells"
    path = os.path.join(H5AD, stem + ".h5ad")
    dense = np.zeros((0, len(A_GENES)), np.float32)
    obs = pd.DataFrame(index=pd.Index([], dtype=object))
    var = a_var()
    adata = ad.AnnData(sp.csr_matrix(dense), obs=obs, var=var.copy(), dtype=np.float32)
    adata.write_h5ad(path)
    e = expected(stem + ".h5ad", "n_obs = 0 (no cells), 10 genes; X csr float32 with indptr=[0]",
                 matrix_json(dense, "csr_matrix"), obs, var)
    write_json(os.path.join(H5AD, stem + ".expected.json"), e)
    return path


def make_nan_inf_negative():
    stem = "nan_inf_negative"
    path = os.path.join(H5AD, stem + ".h5ad")
    dense = A_COUNTS.astype(np.float32)
    dense[0, 0] = np.nan
    dense[1, 2] = np.inf
    dense[2, 4] = -np.inf
    dense[3, 1] = -2.5
    dense[4, 8] = 0.125
    X = sp.csr_matrix(dense)
    # one explicitly stored zero (valid CSR, must not change the dense value)
    r, c = 6, A_GENES.index("HBB")
    assert dense[r, c] == 0
    coo = X.tocoo()
    X = sp.csr_matrix((np.append(coo.data, np.float32(0)), (np.append(coo.row, r), np.append(coo.col, c))),
                      shape=dense.shape)
    X.sort_indices()
    nnz = X.nnz
    assert nnz == np.count_nonzero(dense) + 1
    obs, var = a_obs(), a_var()
    adata = ad.AnnData(X, obs=obs.copy(), var=var.copy(), dtype=np.float32)
    adata.write_h5ad(path)
    with h5py.File(path, "r") as f:
        assert f["X/data"].shape[0] == nnz
    e = expected(stem + ".h5ad",
                 "valid file with suspicious data: X[0,0]=NaN, X[1,2]=+Inf, X[2,4]=-Inf, "
                 "X[3,1]=-2.5, X[4,8]=0.125 (non-integer), plus one explicitly stored 0.0 at "
                 "X[6,7] (nnz counts it); csr float32",
                 matrix_json(dense, "csr_matrix", nnz=nnz), obs, var)
    write_json(os.path.join(H5AD, stem + ".expected.json"), e)
    return path


def make_legacy_v07():
    """Hand-built (h5py) file in the pre-0.8 layout; anndata 0.8 can still read it."""
    stem = "legacy_v07"
    path = os.path.join(H5AD, stem + ".h5ad")
    dense = A_COUNTS.astype(np.float32)
    X = sp.csr_matrix(dense)
    strdt = h5py.string_dtype("utf-8")
    cats = ["B", "Mono", "NK", "T"]
    codes = np.array([-1 if t is None else cats.index(t) for t in A_TYPES], dtype=np.int8)
    n_counts = dense.sum(1).astype(np.float32)
    with h5py.File(path, "w") as f:
        g = f.create_group("X")
        g.attrs["h5sparse_format"] = "csr"
        g.attrs["h5sparse_shape"] = np.array(dense.shape, dtype=np.int64)
        g.create_dataset("data", data=X.data)
        g.create_dataset("indices", data=X.indices.astype(np.int32))
        g.create_dataset("indptr", data=X.indptr.astype(np.int32))

        obs = f.create_group("obs")
        obs.attrs["encoding-type"] = "dataframe"
        obs.attrs["encoding-version"] = "0.1.0"
        obs.attrs["_index"] = "_index"
        obs.attrs["column-order"] = np.array(["n_counts", "cell_type"], dtype=object)
        obs.create_dataset("_index", data=np.array(A_BARCODES, dtype=object), dtype=strdt)
        obs.create_dataset("n_counts", data=n_counts)
        cd = obs.create_dataset("cell_type", data=codes)
        c = obs.create_group("__categories")
        cc = c.create_dataset("cell_type", data=np.array(cats, dtype=object), dtype=strdt)
        cc.attrs["ordered"] = False
        cd.attrs["categories"] = cc.ref

        var = f.create_group("var")
        var.attrs["encoding-type"] = "dataframe"
        var.attrs["encoding-version"] = "0.1.0"
        var.attrs["_index"] = "_index"
        var.attrs["column-order"] = np.array(["gene_ids"], dtype=object)
        var.create_dataset("_index", data=np.array(A_GENES, dtype=object), dtype=strdt)
        var.create_dataset("gene_ids", data=np.array([ENSEMBL[x] for x in A_GENES], dtype=object),
                           dtype=strdt)
        f.create_group("uns")
        f.create_group("obsm")
        f.create_group("varm")
        f.create_group("layers")
    obs_df = pd.DataFrame({"n_counts": n_counts,
                           "cell_type": pd.Categorical(A_TYPES, categories=cats)},
                          index=pd.Index(A_BARCODES))
    e = expected(stem + ".h5ad",
                 "HAND-BUILT with h5py (not anndata): pre-0.8 layout. X group has only attrs "
                 "h5sparse_format='csr' + h5sparse_shape (no encoding-type, no shape); obs/var "
                 "are dataframe 0.1.0 groups; obs/cell_type is an int8 codes dataset whose attr "
                 "'categories' is an HDF5 object reference to obs/__categories/cell_type "
                 "(attr ordered=False); no root encoding attrs. X 'encoding' below is the "
                 "equivalent csr_matrix.",
                 matrix_json(dense, "csr_matrix", chunked=False), obs_df, a_var())
    write_json(os.path.join(H5AD, stem + ".expected.json"), e)
    return path


def make_bad(src):
    """Broken files derived from a good fixture (src = csr_float32.h5ad)."""
    bad = {}

    def copy(stem):
        p = os.path.join(H5AD, stem + ".h5ad")
        shutil.copyfile(src, p)
        return p

    data = open(src, "rb").read()
    with open(os.path.join(H5AD, "bad_truncated.h5ad"), "wb") as fh:
        fh.write(data[: len(data) // 2])
    bad["bad_truncated.h5ad"] = "first half of the bytes of csr_float32.h5ad"

    with open(os.path.join(H5AD, "bad_not_hdf5.h5ad"), "w") as fh:
        fh.write("This is a plain text file, not HDF5.\nbarcode,CD3E,MS4A1\nAAAC-1,3,0\n")
    bad["bad_not_hdf5.h5ad"] = "plain text file with an .h5ad suffix"

    with h5py.File(copy("bad_missing_x"), "r+") as f:
        del f["X"]
    bad["bad_missing_x.h5ad"] = ("csr_float32.h5ad without /X (note: anndata 0.8 itself still "
                                 "reads it, as X=None)")

    with h5py.File(copy("bad_indptr_nonmonotone"), "r+") as f:
        ip = f["X/indptr"][()]
        assert ip[3] < ip[4]
        ip[3], ip[4] = ip[4], ip[3]
        f["X/indptr"][...] = ip
    bad["bad_indptr_nonmonotone.h5ad"] = ("X/indptr[3] and [4] swapped -> decreasing "
                                          "(first=0, last=nnz still hold)")

    with h5py.File(copy("bad_indices_out_of_range"), "r+") as f:
        ind = f["X/indices"][()]
        ind[-1] = f["X"].attrs["shape"][1]  # == n_vars
        f["X/indices"][...] = ind
    bad["bad_indices_out_of_range.h5ad"] = "last X/indices entry == n_vars (10), i.e. >= n_vars"

    with h5py.File(copy("bad_shape_mismatch"), "r+") as f:
        shp = f["X"].attrs["shape"]
        f["X"].attrs["shape"] = np.array([shp[0] + 1, shp[1]], dtype=shp.dtype)
    bad["bad_shape_mismatch.h5ad"] = ("X attr shape = (13, 10) but indptr has 13 entries "
                                      "(12 rows) and obs has 12 rows")

    with h5py.File(copy("bad_unknown_encoding"), "r+") as f:
        f["X"].attrs["encoding-type"] = "foo_matrix"
    bad["bad_unknown_encoding.h5ad"] = "X attr encoding-type = 'foo_matrix'"

    with h5py.File(copy("bad_indptr_last_ne_nnz"), "r+") as f:
        ip = f["X/indptr"][()]
        nnz = f["X/data"].shape[0]
        assert ip[-1] == nnz
        ip[-1] = nnz + 2
        f["X/indptr"][...] = ip
    bad["bad_indptr_last_ne_nnz.h5ad"] = ("X/indptr[-1] = nnz + 2 (past the end of data/indices;"
                                          " still monotone)")
    # Observed behaviour of the reference reader (anndata 0.8.0 read_h5ad) on each file.
    anndata_says = {
        "bad_truncated.h5ad": "OSError: truncated file",
        "bad_not_hdf5.h5ad": "OSError: file signature not found",
        "bad_missing_x.h5ad": "accepted (X=None)",
        "bad_indptr_nonmonotone.h5ad": "accepted silently",
        "bad_indices_out_of_range.h5ad": "accepted silently",
        "bad_shape_mismatch.h5ad": "ValueError: obs rows != X rows",
        "bad_unknown_encoding.h5ad": "KeyError: no reader for IOSpec foo_matrix",
        "bad_indptr_last_ne_nnz.h5ad": "accepted silently",
    }
    files = {k: {"problem": v, "anndata_0_8": anndata_says[k], "expect": "error"}
             for k, v in bad.items()}
    write_json(os.path.join(H5AD, "bad_files.json"),
               {"schema": SCHEMA, "source": "csr_float32.h5ad",
                "notes": "celltyper must reject every file listed here with an error "
                         "(never crash / read out of bounds), even where anndata accepts it.",
                "files": files})
    return list(bad)


# --------------------------------------------------------------------------
# 10x Cell Ranger fixtures (same counts as dataset A = csr_*.h5ad, dense_*.h5ad)
# --------------------------------------------------------------------------

ADT_ID, ADT_NAME = "CD3_TotalSeqB", "CD3"


def tenx_counts():
    """cells x features: the 10 genes of dataset A + 1 Antibody Capture feature."""
    rng = np.random.default_rng(31)
    adt = np.array([rng.poisson(40 if t == "T" else 2) if t else 0 for t in A_TYPES],
                   dtype=np.int64)
    return np.hstack([A_COUNTS, adt[:, None]])


def gz_write(path, text):
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(text.encode())


def mtx_text(counts_cells_x_genes, v3):
    m = counts_cells_x_genes.T  # genes x cells
    lines = ["%%MatrixMarket matrix coordinate integer general"]
    if v3:
        lines.append('%metadata_json: {"software_version": "cellranger-7.1.0", "format_version": 2}')
    else:
        lines.append("%")
    entries = [(r + 1, c + 1, int(m[r, c])) for c in range(m.shape[1]) for r in range(m.shape[0])
               if m[r, c] != 0]
    lines.append(f"{m.shape[0]} {m.shape[1]} {len(entries)}")
    lines += [f"{r} {c} {v}" for r, c, v in entries]
    return "\n".join(lines) + "\n"


def tenx_expected(fmt, notes, counts, ids, names, types, genomes=None):
    e = {
        "schema": SCHEMA,
        "format": fmt,
        "notes": notes,
        "shape": list(counts.shape),  # cells x features
        "nnz": int(np.count_nonzero(counts)),
        "barcodes": A_BARCODES,
        "feature_ids": ids,
        "feature_names": names,
        "feature_types": types,
        "dense": dense_json(counts),
        "gene_expression_matches_h5ad": "csr_int64.h5ad",
    }
    if genomes is not None:
        e["genomes"] = genomes
    return e


def make_tenx():
    os.makedirs(TENX, exist_ok=True)
    counts = tenx_counts()
    ids = [ENSEMBL[g] for g in A_GENES] + [ADT_ID]
    names = A_GENES + [ADT_NAME]
    types = ["Gene Expression"] * len(A_GENES) + ["Antibody Capture"]
    genomes = ["GRCh38"] * len(A_GENES) + [""]

    # v3 MTX directory (gzipped)
    d3 = os.path.join(TENX, "v3_mtx")
    os.makedirs(d3, exist_ok=True)
    gz_write(os.path.join(d3, "matrix.mtx.gz"), mtx_text(counts, v3=True))
    gz_write(os.path.join(d3, "features.tsv.gz"),
             "".join(f"{i}\t{n}\t{t}\n" for i, n, t in zip(ids, names, types)))
    gz_write(os.path.join(d3, "barcodes.tsv.gz"), "".join(b + "\n" for b in A_BARCODES))
    write_json(os.path.join(TENX, "v3_mtx.expected.json"), tenx_expected(
        "10x_mtx_v3", "Cell Ranger v3 filtered_feature_bc_matrix/ layout: matrix.mtx.gz "
        "(features x cells, 1-based, integer, sorted by cell), features.tsv.gz (id, name, "
        "feature_type; last feature is Antibody Capture), barcodes.tsv.gz. dense below is "
        "cells x features.", counts, ids, names, types))

    # v2 MTX directory (plain text, genes only)
    d2 = os.path.join(TENX, "v2_mtx")
    os.makedirs(d2, exist_ok=True)
    g_counts = counts[:, : len(A_GENES)]
    with open(os.path.join(d2, "matrix.mtx"), "w") as fh:
        fh.write(mtx_text(g_counts, v3=False))
    with open(os.path.join(d2, "genes.tsv"), "w") as fh:
        fh.write("".join(f"{i}\t{n}\n" for i, n in zip(ids[:-1], names[:-1])))
    with open(os.path.join(d2, "barcodes.tsv"), "w") as fh:
        fh.write("".join(b + "\n" for b in A_BARCODES))
    write_json(os.path.join(TENX, "v2_mtx.expected.json"), tenx_expected(
        "10x_mtx_v2", "Cell Ranger v2 filtered_gene_bc_matrices/<genome>/ layout (flattened, no "
        "genome subdirectory): matrix.mtx, genes.tsv (id, name), barcodes.tsv, uncompressed. "
        "No feature types in the files; Gene Expression implied.",
        g_counts, ids[:-1], names[:-1], types[:-1]))

    # v3 HDF5 (filtered_feature_bc_matrix.h5): CSC, rows = features, one indptr entry per cell.
    csc = sp.csc_matrix(counts.T.astype(np.int32))  # features x cells
    S = lambda xs: np.array([x.encode() for x in xs])  # fixed-length ASCII like Cell Ranger
    p = os.path.join(TENX, "v3.h5")
    with h5py.File(p, "w") as f:
        f.attrs["filetype"] = "matrix"
        f.attrs["version"] = np.int64(2)
        f.attrs["chemistry_description"] = "Single Cell 3' v3"
        f.attrs["library_ids"] = S(["fixture_lib"])
        f.attrs["original_gem_groups"] = np.array([1], dtype=np.int64)
        m = f.create_group("matrix")
        m.create_dataset("barcodes", data=S(A_BARCODES))
        m.create_dataset("data", data=csc.data.astype(np.int32))
        m.create_dataset("indices", data=csc.indices.astype(np.int64))
        m.create_dataset("indptr", data=csc.indptr.astype(np.int64))
        m.create_dataset("shape", data=np.array(csc.shape, dtype=np.int32))
        ft = m.create_group("features")
        ft.create_dataset("_all_tag_keys", data=S(["genome"]))
        ft.create_dataset("feature_type", data=S(types))
        ft.create_dataset("genome", data=S(genomes))
        ft.create_dataset("id", data=S(ids))
        ft.create_dataset("name", data=S(names))
    write_json(os.path.join(TENX, "v3.expected.json"), tenx_expected(
        "10x_h5_v3", "Cell Ranger v3 .h5: /matrix/{barcodes S18, data int32, indices int64, "
        "indptr int64 (n_cells+1), shape int32 [n_features, n_cells]}, /matrix/features/{id, "
        "name, feature_type, genome, _all_tag_keys} as fixed-length byte strings; CSC with "
        "features as rows. Root attrs filetype='matrix', version=2.",
        counts, ids, names, types, genomes))

    # v2 HDF5 (filtered_gene_bc_matrices_h5.h5): /<genome>/..., genes only.
    csc2 = sp.csc_matrix(g_counts.T.astype(np.int32))
    p2 = os.path.join(TENX, "v2.h5")
    with h5py.File(p2, "w") as f:
        g = f.create_group("GRCh38")
        g.create_dataset("barcodes", data=S(A_BARCODES))
        g.create_dataset("data", data=csc2.data.astype(np.int32))
        g.create_dataset("indices", data=csc2.indices.astype(np.int64))
        g.create_dataset("indptr", data=csc2.indptr.astype(np.int64))
        g.create_dataset("shape", data=np.array(csc2.shape, dtype=np.int32))
        g.create_dataset("genes", data=S(ids[:-1]))
        g.create_dataset("gene_names", data=S(names[:-1]))
    write_json(os.path.join(TENX, "v2.expected.json"), tenx_expected(
        "10x_h5_v2", "Cell Ranger v2 .h5: /GRCh38/{barcodes, data int32, indices int64, indptr "
        "int64, shape int32 [n_genes, n_cells], genes (ids), gene_names}; CSC, genes as rows.",
        g_counts, ids[:-1], names[:-1], types[:-1], ["GRCh38"] * len(A_GENES)))
    verify_tenx()


def verify_tenx():
    """Independent read-back of the 10x fixtures (scipy mmread, h5py) against their JSON."""
    def load(name):
        return json.load(open(os.path.join(TENX, name)))

    for d, name, gz in (("v3_mtx", "v3_mtx.expected.json", True), ("v2_mtx", "v2_mtx.expected.json", False)):
        e = load(name)
        mpath = os.path.join(TENX, d, "matrix.mtx.gz" if gz else "matrix.mtx")
        with (gzip.open(mpath) if gz else open(mpath, "rb")) as fh:
            m = scipy.io.mmread(fh).toarray().T
        assert m.tolist() == e["dense"], d
        op = gzip.open if gz else open
        fname = "features.tsv.gz" if gz else "genes.tsv"
        rows = [l.rstrip("\n").split("\t") for l in op(os.path.join(TENX, d, fname), "rt")]
        assert [r[0] for r in rows] == e["feature_ids"] and [r[1] for r in rows] == e["feature_names"]
        if gz:
            assert [r[2] for r in rows] == e["feature_types"]
        bc = [l.strip() for l in op(os.path.join(TENX, d, "barcodes.tsv.gz" if gz else "barcodes.tsv"), "rt")]
        assert bc == e["barcodes"]
    for h5, grp, name in (("v3.h5", "matrix", "v3.expected.json"), ("v2.h5", "GRCh38", "v2.expected.json")):
        e = load(name)
        with h5py.File(os.path.join(TENX, h5), "r") as f:
            g = f[grp]
            shape = tuple(g["shape"][()])
            m = sp.csc_matrix((g["data"][()], g["indices"][()], g["indptr"][()]), shape=shape)
            assert m.toarray().T.tolist() == e["dense"], h5
            assert [x.decode() for x in g["barcodes"][()]] == e["barcodes"]
            idk = "features/id" if grp == "matrix" else "genes"
            assert [x.decode() for x in g[idk][()]] == e["feature_ids"]
    # cross-check with the h5ad fixture
    a = ad.read_h5ad(os.path.join(H5AD, "csr_int64.h5ad"))
    e3 = load("v3_mtx.expected.json")
    assert (a.X.toarray() == np.array(e3["dense"])[:, : a.n_vars]).all()
    assert list(a.obs_names) == e3["barcodes"]
    assert list(a.var["gene_ids"]) == e3["feature_ids"][: a.n_vars]


# --------------------------------------------------------------------------

def main():
    check_a()
    for d in (H5AD, TENX):
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
    made = make_encoding_variants()
    made += make_full()
    made.append(make_zero_cells())
    made.append(make_nan_inf_negative())
    made.append(make_legacy_v07())
    make_bad(os.path.join(H5AD, "csr_float32.h5ad"))
    make_tenx()
    total = 0
    for root, _, files in os.walk(HERE):
        for fn in files:
            p = os.path.join(root, fn)
            if p.startswith(H5AD) or p.startswith(TENX):
                sz = os.path.getsize(p)
                total += sz
                assert sz < 100_000, (p, sz)
    assert total < 2_000_000, total
    print(f"wrote {len(made)} good h5ad fixtures + bad files + 10x fixtures; {total} bytes total")


if __name__ == "__main__":
    main()
