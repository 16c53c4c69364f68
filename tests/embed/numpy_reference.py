#!/usr/bin/python3
"""Independent NumPy/SciPy reference of GenePT-w cell embeddings (float64 throughout).

usage: numpy_reference.py DATA.h5ad MATRIX GENES.npy VAR_ROWS.npy NORMALIZATION OUT.npy

MATRIX: X | raw | layers/<name>; GENES.npy: aligned gene matrix [rows x k];
VAR_ROWS.npy: per var, the row of GENES.npy or -1; NORMALIZATION: none | cp10k | log1p-cp10k.
Writes the L2-normalised embeddings [cells x k] (zero rows stay zero).
"""
import sys

import anndata
import numpy as np
import scipy.sparse as sp

path, matrix, genes_path, rows_path, normalization, out = sys.argv[1:7]
adata = anndata.read_h5ad(path)
if matrix == "X":
    X = adata.X
elif matrix in ("raw", "raw/X"):
    X = adata.raw.X
else:
    X = adata.layers[matrix.split("/", 1)[1]]
X = sp.csr_matrix(X, dtype=np.float64)
# Spike-in RNAs (ERCC-00002, SIRV1) are no cell's transcripts: out of the library sizes
names = adata.raw.var_names if matrix in ("raw", "raw/X") else adata.var_names
spike_in = np.array([n.startswith(("ERCC-", "ERCC_")) and n[5:].isdigit() and len(n) >= 10 or n.startswith("SIRV") and n[4:].isdigit()
                     for n in names.astype(str)])
if spike_in.any():
    X = X @ sp.diags((~spike_in).astype(np.float64))
genes = np.load(genes_path).astype(np.float64)
var_rows = np.load(rows_path)
if normalization != "none":
    totals = np.asarray(X.sum(axis=1)).ravel()
    scale = np.divide(1e4, totals, out=np.zeros_like(totals), where=totals > 0)
    X = sp.diags(scale) @ X
    if normalization == "log1p-cp10k":
        X = X.log1p()
matched = np.flatnonzero(var_rows >= 0)
W = X[:, matched]
E = genes[var_rows[matched]]
emb = np.asarray(W @ E)
norms = np.linalg.norm(emb, axis=1, keepdims=True)
emb = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)
np.save(out, emb)
