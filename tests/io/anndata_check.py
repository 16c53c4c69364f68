#!/usr/bin/python3
"""Check an .h5ad file against an expected-values JSON, using the reference anndata.

Usage:
  /usr/bin/python3 tests/io/anndata_check.py FILE.h5ad EXPECTED.json
      -> prints "OK", exit 0; or one line per mismatch, exit 1 (exit 2 on usage/load error).
  /usr/bin/python3 tests/io/anndata_check.py --dump FILE.h5ad
      -> prints the file as JSON in the same schema (see tests/data/README.md).

FILE is loaded with anndata.read_h5ad (values, dtypes, categories, ...) and opened
with h5py for storage-level facts (encoding-type, index dtype, compression,
chunking, the obs/var `_index` attribute). Keys absent from EXPECTED are not
checked. Numbers are compared exactly in the dtype of the array read from the
file (a float32 array compares against float32(expected)), NaN equals NaN;
non-finite floats may be given as "NaN", "Infinity", "-Infinity" (or the
non-standard JSON literals NaN/Infinity).
"""
import json
import math
import sys
import warnings

warnings.simplefilter("ignore")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import anndata as ad  # noqa: E402

SCHEMA = "celltyper-expected/1"
MAX_REPORT = 20  # per-array cap on reported element mismatches

# ---------------------------------------------------------------- dumping


def jnum(v, kind):
    if kind == "f":
        v = float(v)
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if kind == "b":
        return bool(v)
    return int(v)


def _attr_str(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray) and v.shape == ():
        return _attr_str(v[()])
    return v if v is None else str(v)


def elem_encoding(h5elem):
    if h5elem is None:
        return None
    enc = h5elem.attrs.get("encoding-type")
    if enc is not None:
        return _attr_str(enc)
    if isinstance(h5elem, h5py.Group) and "h5sparse_format" in h5elem.attrs:
        return _attr_str(h5elem.attrs["h5sparse_format"]) + "_matrix"  # pre-0.7 sparse
    if isinstance(h5elem, h5py.Dataset):
        return "array"
    return None


def matrix_dump(m, h5elem):
    """m: in-memory matrix from anndata; h5elem: the h5py element it came from."""
    d = {}
    if isinstance(m, pd.DataFrame):
        return {"encoding": elem_encoding(h5elem) or "dataframe", "shape": list(m.shape)}
    d["encoding"] = elem_encoding(h5elem)
    if sp.issparse(m):
        dense = m.toarray()
        d["dtype"] = str(m.dtype)
    else:
        dense = np.asarray(m)
        d["dtype"] = str(dense.dtype)
    d["shape"] = [int(x) for x in dense.shape]
    data_ds = h5elem
    if isinstance(h5elem, h5py.Group):
        if "data" in h5elem:
            data_ds = h5elem["data"]
            d["index_dtype"] = str(h5elem["indices"].dtype)
            d["indptr_dtype"] = str(h5elem["indptr"].dtype)
            d["nnz"] = int(h5elem["data"].shape[0])
    if isinstance(data_ds, h5py.Dataset):
        d["compression"] = data_ds.compression
        d["chunked"] = data_ds.chunks is not None
    k = dense.dtype.kind
    d["dense"] = [[jnum(v, k) for v in row] for row in dense] if dense.ndim == 2 else None
    return d


def column_dump(name, s):
    dt = s.dtype
    c = {"name": str(name)}
    if isinstance(dt, pd.CategoricalDtype):
        cat = s.array
        c["kind"] = "categorical"
        kind = cat.categories.dtype.kind
        c["categories"] = [str(x) if kind in "OUS" else jnum(x, kind) for x in cat.categories]
        c["ordered"] = bool(cat.ordered)
        c["codes"] = [int(x) for x in cat.codes]
        c["values"] = [None if code < 0 else c["categories"][code] for code in cat.codes]
    elif isinstance(dt, pd.BooleanDtype):
        c["kind"] = "nullable-bool"
        c["dtype"] = "bool"
        c["values"] = [None if pd.isna(v) else bool(v) for v in s]
    elif isinstance(dt, pd.api.extensions.ExtensionDtype) and getattr(dt, "kind", "") in "iu" \
            and hasattr(dt, "numpy_dtype"):
        c["kind"] = "nullable-int"
        c["dtype"] = str(dt.numpy_dtype)
        c["values"] = [None if pd.isna(v) else int(v) for v in s]
    elif dt == object or isinstance(dt, pd.StringDtype):
        c["kind"] = "string"
        c["values"] = [None if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v)
                       for v in s]
    elif dt.kind == "b":
        c["kind"] = "bool"
        c["values"] = [bool(v) for v in s]
    elif dt.kind in "iu":
        c["kind"] = "int"
        c["dtype"] = str(dt)
        c["values"] = [int(v) for v in s]
    elif dt.kind == "f":
        c["kind"] = "float"
        c["dtype"] = str(dt)
        c["values"] = [jnum(v, "f") for v in s]
    else:
        c["kind"] = "other:" + str(dt)
        c["values"] = [str(v) for v in s]
    return c


def df_dump(df, h5elem):
    idx_name = None
    if h5elem is not None and "_index" in h5elem.attrs:
        idx_name = _attr_str(h5elem.attrs["_index"])
    return {
        "index_name": idx_name,
        "index": [str(x) for x in df.index],
        "column_order": [str(c) for c in df.columns],
        "columns": [column_dump(c, df[c]) for c in df.columns],
    }


def dump(path):
    adata = ad.read_h5ad(path)
    with h5py.File(path, "r") as f:
        out = {"schema": SCHEMA, "shape": [int(adata.n_obs), int(adata.n_vars)]}
        out["X"] = None if adata.X is None else matrix_dump(adata.X, f.get("X"))
        out["obs"] = df_dump(adata.obs, f.get("obs"))
        out["var"] = df_dump(adata.var, f.get("var"))
        if adata.raw is not None:
            out["raw"] = {"shape": [int(x) for x in adata.raw.shape],
                          "X": matrix_dump(adata.raw.X, f.get("raw/X")),
                          "var": df_dump(adata.raw.var, f.get("raw/var"))}
        else:
            out["raw"] = None
        out["layers"] = [dict(name=k, **matrix_dump(adata.layers[k], f.get(f"layers/{k}")))
                         for k in sorted(adata.layers.keys())]
        out["obsm"] = [dict(name=k, **matrix_dump(adata.obsm[k], f.get(f"obsm/{k}")))
                       for k in sorted(adata.obsm.keys())]
    return out


# ---------------------------------------------------------------- comparing

class Checker:
    def __init__(self):
        self.errors = []

    def err(self, where, msg):
        self.errors.append(f"{where}: {msg}")

    def eq(self, where, exp, act):
        if type(exp) is bool or type(act) is bool:
            same = type(exp) is type(act) and exp == act
        else:
            same = exp == act
        if not same:
            self.err(where, f"expected {exp!r}, got {act!r}")
        return same

    # -- numbers ---------------------------------------------------------
    @staticmethod
    def _to_float(v):
        if isinstance(v, str):
            m = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf,
                 "inf": math.inf, "-inf": -math.inf}
            if v.lower() not in m:
                raise ValueError(f"bad float literal {v!r}")
            return m[v.lower()]
        if isinstance(v, bool) or v is None:
            raise ValueError(f"not a number: {v!r}")
        return float(v)

    def values(self, where, exp, act, dtype):
        """Compare flat lists: exp from JSON, act from dump (already JSON-ish); dtype=actual dtype."""
        if not isinstance(exp, list):
            self.err(where, f"expected a list, got {type(exp).__name__}")
            return
        if len(exp) != len(act):
            self.err(where, f"length: expected {len(exp)}, got {len(act)}")
            return
        kind = np.dtype(dtype).kind if dtype not in (None, "") else None
        bad = 0
        for i, (e, a) in enumerate(zip(exp, act)):
            ok = True
            try:
                if e is None or a is None:
                    ok = e is None and a is None
                elif kind == "f":
                    ef = np.array(self._to_float(e), dtype=np.float64).astype(dtype)
                    af = np.array(self._to_float(a), dtype=np.float64).astype(dtype)
                    ok = bool(ef == af) or bool(np.isnan(ef) and np.isnan(af))
                elif kind in ("i", "u"):
                    if isinstance(e, bool):
                        ok = False
                    elif isinstance(e, float):
                        ok = e.is_integer() and int(e) == a
                    else:
                        ok = isinstance(e, int) and e == a
                elif kind == "b":
                    ok = isinstance(e, bool) and e == a
                else:
                    ok = type(e) is type(a) and e == a if isinstance(e, bool) or isinstance(a, bool) \
                        else e == a
            except (ValueError, TypeError) as ex:
                ok = False
                e = f"{e!r} ({ex})"
            if not ok:
                bad += 1
                if bad <= MAX_REPORT:
                    self.err(f"{where}[{i}]", f"expected {e!r}, got {a!r}")
        if bad > MAX_REPORT:
            self.err(where, f"... {bad} mismatching elements in total")

    # -- structures ------------------------------------------------------
    def matrix(self, where, exp, act):
        if exp is None or act is None:
            if not (exp is None and act is None):
                self.err(where, f"expected {'absent' if exp is None else 'present'}, "
                                f"got {'absent' if act is None else 'present'}")
            return
        for k in ("encoding", "dtype", "index_dtype", "indptr_dtype", "nnz", "compression",
                  "chunked"):
            if k in exp:
                self.eq(f"{where}.{k}", exp[k], act.get(k))
        if "shape" in exp:
            if not self.eq(f"{where}.shape", list(exp["shape"]), act.get("shape")):
                return
        if "dense" in exp:
            ed, ad_ = exp["dense"], act.get("dense")
            if ad_ is None:
                self.err(f"{where}.dense", "not available in file")
                return
            if not isinstance(ed, list) or len(ed) != len(ad_):
                self.err(f"{where}.dense", f"rows: expected {len(ed) if isinstance(ed, list) else ed!r}, "
                                           f"got {len(ad_)}")
                return
            before = len(self.errors)
            for r, (er, ar) in enumerate(zip(ed, ad_)):
                self.values(f"{where}.dense[{r}]", er, ar, act["dtype"])
                if len(self.errors) - before > MAX_REPORT:
                    self.err(f"{where}.dense", "too many mismatches, stopped")
                    break

    def dataframe(self, where, exp, act):
        if exp is None:
            return
        for k in ("index_name",):
            if k in exp:
                self.eq(f"{where}.{k}", exp[k], act[k])
        if "index" in exp:
            self.values(f"{where}.index", exp["index"], act["index"], None)
        if "column_order" in exp:
            self.eq(f"{where}.column_order", list(exp["column_order"]), act["column_order"])
        if "columns" in exp:
            acols = {c["name"]: c for c in act["columns"]}
            for ec in exp["columns"]:
                name = ec.get("name")
                w = f"{where}.columns[{name!r}]"
                if name not in acols:
                    self.err(w, "column missing in file")
                    continue
                ac = acols[name]
                for k in ("kind", "dtype", "ordered"):
                    if k in ec:
                        self.eq(f"{w}.{k}", ec[k], ac.get(k))
                if "categories" in ec:
                    if ac.get("categories") is None:
                        self.err(f"{w}.categories", "column is not categorical")
                    else:
                        self.values(f"{w}.categories", ec["categories"], ac["categories"], None)
                if "codes" in ec:
                    if ac.get("codes") is None:
                        self.err(f"{w}.codes", "column is not categorical")
                    else:
                        self.values(f"{w}.codes", ec["codes"], ac["codes"], "int64")
                if "values" in ec:
                    dt = ac.get("dtype") if ac.get("kind") in ("float", "int", "nullable-int") else None
                    if ac.get("kind") in ("bool", "nullable-bool"):
                        dt = "bool"
                    self.values(f"{w}.values", ec["values"], ac["values"], dt)

    def named_list(self, where, exp, act):
        if exp is None:
            return
        en = sorted(e.get("name") for e in exp)
        an = sorted(a["name"] for a in act)
        self.eq(f"{where} names", en, an)
        amap = {a["name"]: a for a in act}
        for e in exp:
            if e.get("name") in amap:
                self.matrix(f"{where}[{e['name']!r}]", e, amap[e["name"]])

    def check(self, exp, act):
        if "shape" in exp:
            self.eq("shape", list(exp["shape"]), act["shape"])
        if "X" in exp:
            self.matrix("X", exp["X"], act["X"])
        for k in ("obs", "var"):
            if k in exp:
                self.dataframe(k, exp[k], act[k])
        if "raw" in exp:
            er, ar = exp["raw"], act["raw"]
            if er is None or ar is None:
                if not (er is None and ar is None):
                    self.err("raw", f"expected {'no raw' if er is None else 'raw'}, "
                                    f"got {'no raw' if ar is None else 'raw'}")
            else:
                if "shape" in er:
                    self.eq("raw.shape", list(er["shape"]), ar["shape"])
                if "X" in er:
                    self.matrix("raw.X", er["X"], ar["X"])
                if "var" in er:
                    self.dataframe("raw.var", er["var"], ar["var"])
        for k in ("layers", "obsm"):
            if k in exp:
                self.named_list(k, exp[k], act[k])
        return self.errors


def main(argv):
    if len(argv) == 3 and argv[1] == "--dump":
        print(json.dumps(dump(argv[2]), indent=1, allow_nan=False))
        return 0
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, exp_path = argv[1], argv[2]
    try:
        with open(exp_path) as fh:
            exp = json.load(fh)
    except Exception as ex:  # noqa: BLE001
        print(f"cannot read expected JSON {exp_path}: {ex}")
        return 2
    try:
        act = dump(path)
    except Exception as ex:  # noqa: BLE001
        print(f"anndata cannot read {path}: {type(ex).__name__}: {ex}")
        return 1
    errors = Checker().check(exp, act)
    if errors:
        for e in errors:
            print(e)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
