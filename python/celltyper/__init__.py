"""celltyper from Python: cell types for single-cell RNA-seq on in-memory AnnData objects.

    import anndata, celltyper
    ref = anndata.read_h5ad("reference.h5ad")
    model = celltyper.train(ref, label="cell_type")          # or celltyper.load_model("model.h5")
    query = anndata.read_h5ad("query.h5ad")
    result = celltyper.annotate(query, model=model)          # adds obs['celltyper_label'], ...
    result = celltyper.annotate(query, reference=ref, label="cell_type")   # train on the fly
    celltyper.evaluate(query, truth="cell_type")              # metrics as a dict

The computation is the C++ engine of the `celltyper` command (same models, same results); the
expression matrix (X, a layer or raw.X as SciPy CSR or a dense NumPy array) is read in place,
not copied, and the GIL is released while the engine runs. Which matrix: `layer=` (a layer name,
or "X") or `use_raw=True`; with neither, X when it holds raw counts, else layers['counts'] or
raw.X when they do (CELLxGENE files keep normalised values in X and the counts in raw.X), else
X, as the command's `--layer auto`; the choice is logged at INFO on logging.getLogger("celltyper"),
printed with verbose=True, and kept as `result.matrix`. Bad input raises ValueError with the
one-line message the command prints, its flags named as the function's keywords (`min_score=`,
`use_raw=True`); unreadable files raise OSError. Models pickle (and deep-copy) as their file's bytes.
"""
from __future__ import annotations

import contextvars as _contextvars
import json
import keyword as _keyword
import os
import logging as _logging
import warnings as _warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _celltyper as _core

__all__ = ["Model", "AnnotationResult", "CrossValidationResult", "annotate", "train", "load_model", "embed", "evaluate", "cv", "genes",
           "__version__"]
__version__ = _core.version()

# Where scripts/setup.sh installs the default gene store: build/share/celltyper (this package is
# build/python/celltyper). The engine finds the Cell Ontology installed there itself, as the CLI does.
_SHARE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "share", "celltyper")



# What celltyper chose for the user as the user would have (counts read from raw.X beside a
# log-normalised X: CELLxGENE's layout) is a note, logged at INFO on this logger (the engine's
# "note: ..." lines, which the command line prints unless --quiet); warnings are warnings.
_log = _logging.getLogger("celltyper")
_NOTE = "note: "


def _warn(message: str, category=UserWarning) -> None:
    """warnings.warn at the user's line: the first caller outside this module (however deep the
    call, a comprehension's frame included)."""
    import sys

    level = 2
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
        level += 1
    _warnings.warn(message, category, stacklevel=level)


# The notes said while an `annotate` call runs (which matrix of an AnnData was read): its result's
# .notes too, beside the engine's.
_notes_said: _contextvars.ContextVar = _contextvars.ContextVar("celltyper_notes_said", default=None)


def _note(message: str) -> None:
    """Log `message` at INFO (a note: chosen as the user would have), and keep it for the
    running `annotate` call's result."""
    _log.info(message)
    said = _notes_said.get()
    if said is not None:
        said.append(message)


def _collecting_notes(function):
    """`function` (annotate) with the notes said while it runs first in its result's .notes."""
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        said: list = []
        token = _notes_said.set(said)
        try:
            result = function(*args, **kwargs)
        finally:
            _notes_said.reset(token)
        result.notes[:0] = said
        return result

    return wrapper


def _tell(message: str) -> bool:
    """Warn `message`, or log it when it is a note. Returns whether it was a warning."""
    if message.startswith(_NOTE):
        _log.info(message[len(_NOTE):])
        return False
    _warn(message)
    return True

def _default_store() -> str:
    # (CELLTYPER_GENE_STORE: "" lets the engine take it, and name the variable when its file is missing)
    return "" if os.environ.get("CELLTYPER_GENE_STORE") else os.path.join(_SHARE, "gene_embeddings.h5")


# ---- messages in Python's terms ------------------------------------------------------------------

# The command line's placeholders in messages ("--label-map TSV", "--label obs:COLUMN"), not values.
_PLACEHOLDERS = {"TSV", "FILE", "NAME", "COLUMN", "PATH", "DIR", "N", "REF"}
# Words of the sentence after a flag ("--features must be ...", "pass --gene-column with ..."), not
# its value ("--layer counts").
_PROSE = {"a", "also", "an", "and", "applies", "are", "as", "at", "be", "but", "by", "can", "cannot", "does", "for", "from", "given",
          "has", "have", "if", "in", "instead", "is", "it", "its", "must", "names", "needs", "not", "of", "on", "only", "or", "reads",
          "so", "takes", "than", "that", "the", "then", "this", "to", "too", "was", "when", "which", "with", "writes"}


# CellTypist's keyword arguments and what does their work here (a TypeError says so).
_CELLTYPIST = {
    "p_thres": "min_score= (cells whose best score is below it are 'Unassigned'; celltyper's scores are calibrated); for cells of a "
               "type the reference lacks, unassign_unlike=True",
    "majority_voting": "over_clustering='COLUMN' (an obs column of clusters: adds celltyper_majority_vote; celltyper does not cluster)",
    "mode": "there are no 'prob match' multi-labels: top_k=2 gives each cell's two best labels and scores, hierarchical=True the "
            "Cell Ontology term their summed score reaches",
    "top_genes": "n_genes= (the size of the panel of most variable genes)",
    "feature_selection": "n_genes= (a panel of the most variable genes is always chosen)",
    "balance_cell_type": "class_balanced= (1, the default, weighs every class alike; 0 weighs every cell alike)",
    "check_expression": "nothing: counts, CP10k and log1p(CP10k) are each recognised and normalised (normalization=)",
    "use_SGD": "nothing: L-BFGS fits every reference cell (max_iterations=)",
    "mini_batch": "nothing: L-BFGS fits every reference cell (max_iterations=)",
}


# SingleR's arguments and what does their work here.
_SINGLER = {
    "ref": "reference= (an AnnData, a list or a dict of them) with label= (reference mode), or model= (a model trained once)",
    "labels": "label= (the references' obs column of cell types)",
    "prune": "unassign_unlike=True (cells unlike every reference type are 'Unassigned'; min_score= those below a score)",
    "fine_tune": "no counterpart: reference mode trains a classifier on every reference cell over the genes the query shares; top_k=2 "
                 "gives each cell's runner-up and its score (SingleR's delta.next)",
    "clusters": "over_clustering= (an obs column or one cluster per cell: each cluster's majority label, celltyper_majority_vote)",
    "de_method": "no marker-gene step: a logistic regression on the most variable genes the query shares (n_genes= in train)",
}


def _other_tool_hint(verb: str, key: str) -> Optional[str]:
    """The TypeError text for CellTypist's or SingleR's keyword `key`, or None."""
    for tool, keywords in (("CellTypist", _CELLTYPIST), ("SingleR", _SINGLER)):
        if hint := keywords.get(key):
            return f"{verb}() got an unexpected keyword argument '{key}': {tool}'s {key}; here {hint}"
    return None


def _pythonic(function):
    """The engine's messages name command-line flags (`--min-score`, `--layer raw`); raised from
    `function`, they name its keyword arguments instead (`min_score=`, `use_raw=True`) where it has
    them. A misspelt keyword that lands in **hyperparameters is a TypeError with the likely one."""
    import functools
    import inspect
    import re

    parameters = inspect.signature(function).parameters
    keywords = set(parameters)
    special = {"--layer raw": "use_raw=True", "--allow-low-coverage": "allow_low_coverage=True", "--no-refit": "refit=False",
               "--hierarchical": "hierarchical=True"}
    elsewhere = {"annotate --hierarchical": "annotate(hierarchical=True)"}  # another verb's flag named in this one's message
    # train's flags named in another verb's message (annotate: a model without reference profiles)
    train_flags = {"--reference-sample 0": ("reference_sample", "train(reference_sample=0)")}
    renamed = {"normalize": "normalization", "normalise": "normalization", "normalisation": "normalization"}

    # (advice naming other commands, said in Python: annotate's low-coverage fix)
    rewritten = [(re.compile(r"`celltyper annotate --reference REF\.h5ad --label obs:COLUMN` \(trains on the shared genes\), or "
                             r"`celltyper train --restrict-genes [^`]*`"),
                  "annotate(adata, reference=REF, label='COLUMN') (trains on the shared genes), or a model trained on the genes "
                  "the query measures: train(REF[:, REF.var_names.isin(adata.var_names)], label='COLUMN')"),
                 # (references labelled in differently named columns)
                 (re.compile(r"--label obs:([^,\s]+),obs:COLUMN"), r"label=['\1', 'COLUMN']")]

    def translate(message: str) -> str:
        for pattern, text in rewritten:
            message = pattern.sub(text, message)
        for flag, keyword in elsewhere.items():
            message = message.replace(flag, keyword)
        for flag, (name, call) in train_flags.items():
            if name not in keywords:
                message = message.replace(flag, call)
        for flag, keyword in special.items():
            if keyword.split("=")[0] in keywords:
                message = message.replace(flag, keyword)

        def flag(match):
            name = match.group(1).replace("-", "_")
            name = renamed.get(name, name)
            if name not in keywords:
                return match.group(0)
            rest = match.group(0)[len(match.group(1)) + 2:]  # " VALUE", or ""
            if isinstance(parameters[name].default, bool):  # a switch takes no value: what follows is prose
                return f"{name}=True{rest}"
            value = match.group(2)
            if value is None or value.rstrip(",;:.)") in _PROSE:
                return f"{name}=" + rest
            trail = re.search(r"[,;:.)]+$", value)  # punctuation of the sentence, not of the value
            value, trail = (value[:trail.start()], trail.group(0)) if trail else (value, "")
            if re.fullmatch(r"-?[0-9.e+-]+", value):
                return f"{name}={value}{trail}"
            placeholder = re.fullmatch(r"(?:obs:)?([A-Z]+)", value)  # TSV, FILE, obs:COLUMN (Python names the column alone)
            if placeholder and placeholder.group(1) in _PLACEHOLDERS:
                return f"{name}=<{placeholder.group(1)}>{trail}"
            if re.fullmatch(r"[A-Za-z0-9_./:-]+", value):
                return f"{name}='{value}'{trail}"
            return f"{name}= {value}{trail}"

        return re.sub(r"(?<![\w`])--([a-z][a-z0-9-]*)(?: (\S+))?", flag, message)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ValueError as error:
            message = str(error)
            translated = translate(message)
            data = args[0] if args else kwargs.get("adata")
            if "(layer=<NAME>)" in translated and hasattr(data, "layers") and hasattr(data, "raw"):
                # (the command line lists a file's other matrices; here, the AnnData's)
                others = [f"layer='{name}'" for name in getattr(data, "layers", {}).keys()] + (["use_raw=True"] if data.raw is not None else [])
                if others:
                    translated = translated.replace("(layer=<NAME>)", f"({', '.join(others)}: this AnnData has them)")
            if translated == message:
                raise
            raise ValueError(translated) from None
        except TypeError as error:  # a misspelt keyword: name the likely one
            import difflib
            unexpected = re.fullmatch(rf"{function.__name__}\(\) got an unexpected keyword argument '(\w+)'", str(error))
            given = unexpected.group(1) if unexpected else ""
            if hint := _other_tool_hint(function.__name__, given):
                raise TypeError(hint) from None
            if renamed.get(given) in keywords:  # the command line's name (--normalize), or another spelling
                close = [renamed[given]]
            else:
                close = difflib.get_close_matches(given, sorted(keywords), n=1, cutoff=0.75) if unexpected else []
            if not close:
                raise
            raise TypeError(f"{function.__name__}() got an unexpected keyword argument '{unexpected.group(1)}'; did you mean "
                            f"'{close[0]}'?") from None

    wrapper.speak = translate  # (its warnings name keywords too)
    return wrapper


# ---- AnnData -> the engine's dataset spec -----------------------------------------------------

def _in_category_order(samples: list, adata, group: Optional[str]) -> list:
    """annotate(group=COLUMN)'s per-sample summaries in the column's category order, as the command
    line lists them from the file (the engine sees the values as text: first-seen order)."""
    if not samples or not group or group == "none" or group not in adata.obs or str(adata.obs[group].dtype) != "category":
        return samples
    rank = {str(category): i for i, category in enumerate(adata.obs[group].cat.categories)}
    return sorted(samples, key=lambda sample: rank.get(sample.get("level", ""), len(rank)))


def _column(values) -> List[Optional[str]]:
    """A pandas Series / sequence as text, None where missing."""
    import pandas as pd

    series = pd.Series(values)
    missing = series.isna().to_numpy()
    text = series.astype(object).to_numpy()
    return [None if missing[i] else str(text[i]) for i in range(len(text))]


def _matrix_spec(X, name: str) -> Dict[str, Any]:
    """CSR arrays or a dense C-ordered array, borrowed (no copy) when the layout allows."""
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy comes with anndata
        sp = None
    if hasattr(X, "to_memory"):  # anndata's backed datasets (read_h5ad(backed="r")): sparse ones too
        X = X.to_memory()
    if sp is not None and sp.issparse(X):
        if X.dtype == np.float16:  # (the engine reads 32- and 64-bit numbers)
            X = X.astype(np.float32)
        if X.format == "csc" or X.format != "csr":
            _warn(f"{name} is {X.format.upper()}: converted to CSR for reading (a copy); store it as CSR to avoid it")
            X = X.tocsr()
        # (checked in place: SciPy's has_sorted_indices copies the indices when indptr is int64 and
        # indices int32; duplicates within a row are refused by the engine, as on the command line.)
        if not _core.csr_indices_sorted(np.asarray(X.indptr), np.asarray(X.indices)):
            indptr = np.asarray(X.indptr)  # (SciPy's sort fails on broken row pointers with a C++ error)
            if not (len(indptr) == X.shape[0] + 1 and indptr[0] == 0 and indptr[-1] == len(X.indices) and (np.diff(indptr) >= 0).all()):
                raise ValueError(f"{name}: the CSR row pointers (indptr) are broken: they must start at 0, never decrease and end at "
                                 f"the number of stored values ({len(X.indices)})")
            _warn(f"{name} has unsorted column indices: a sorted copy is read (call X.sort_indices() to avoid it)")
            X = X.copy()
            X.sort_indices()
        return {"format": "csr", "shape": (int(X.shape[0]), int(X.shape[1])), "data": np.asarray(X.data),
                "indices": np.asarray(X.indices), "indptr": np.asarray(X.indptr), "_keep": X}
    array = np.asarray(X)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    if array.ndim != 2:
        raise ValueError(f"{name} has {array.ndim} dimensions; a cells x genes matrix is needed")
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    return {"format": "dense", "shape": (int(array.shape[0]), int(array.shape[1])), "data": array, "_keep": array}


def _dataset(adata, *, layer: Optional[str] = None, use_raw: bool = False, obs_columns: Sequence[str] = (),
             name: str = "AnnData") -> Dict[str, Any]:
    if not hasattr(adata, "obs") or not hasattr(adata, "var"):
        raise TypeError(f"{name}: an AnnData object is needed, not {type(adata).__name__}")
    if "celltyper_extract" in getattr(adata, "uns", {}):
        raise ValueError(f"{name} is a `celltyper extract` training matrix (cell embeddings in obsm, no expression in X): train on its "
                         "file with `celltyper train --reference FILE` (or `celltyper cv`), which read those embeddings")
    if use_raw and layer is not None:
        raise ValueError("pass layer= or use_raw=True, not both")
    if layer is None and not use_raw:
        layer, use_raw = _counts_matrix(adata, name)
    if use_raw:
        if adata.raw is None:
            raise ValueError(f"{name} has no raw")
        X, var, source, matrix = adata.raw.X, adata.raw.var, f"{name}.raw.X", "raw/X"
    elif layer == "X":
        if adata.X is None:
            raise ValueError(f"{name}.X is empty")
        X, var, source, matrix = adata.X, adata.var, f"{name}.X", "X"
    elif layer is not None:
        if layer not in adata.layers:
            hint = "; use_raw=True reads adata.raw" if layer == "raw" else ""
            raise ValueError(f"{name} has no layer '{layer}' (layers: {', '.join(adata.layers.keys()) or 'none'}){hint}")
        X, var, source, matrix = adata.layers[layer], adata.var, f"{name}.layers['{layer}']", f"layers/{layer}"
    else:
        if adata.X is None:
            raise ValueError(f"{name}.X is empty")
        X, var, source, matrix = adata.X, adata.var, f"{name}.X", "X"
    spec = _matrix_spec(X, source)
    if spec["shape"] != (adata.n_obs, len(var)):
        raise ValueError(f"{source} is {spec['shape'][0]} x {spec['shape'][1]} but {name} has {adata.n_obs} cells and {len(var)} genes")
    columns = {}
    for column in obs_columns:
        if column not in adata.obs.columns:
            raise ValueError(f"{name}: no obs column '{column}' (available: {', '.join(map(str, adata.obs.columns))})")
        columns[column] = _column(adata.obs[column])
    var_columns = {}
    for column in var.columns:  # gene ids and symbols: text columns only
        kind = var[column].dtype.kind
        if kind in "OSU" or str(var[column].dtype) in ("category", "string"):
            var_columns[str(column)] = _column(var[column])
    spec.update({"name": source, "matrix": matrix, "obs_names": [str(n) for n in adata.obs.index], "obs": columns,
                 "var_names": [str(n) for n in var.index], "var": var_columns})
    return spec


def _matrix_request(layer: Optional[str], use_raw: bool) -> str:
    """The matrix a call asked for, as the command line's --layer names it (a model's provenance
    "matrix"; what each AnnData gave is its reference's "matrix"): auto, raw, X or a layer."""
    return "raw" if use_raw else (layer or "auto")


def _scale(X) -> str:
    """What the first 2,000 cells of X hold ('raw-counts', 'log-normalized', ...), by the engine's
    test (the command line's --layer auto)."""
    import scipy.sparse as sp

    part = X[:2000]
    if sp.issparse(part):  # a small copy in CSR with sorted indices: no conversion warning for the probe
        part = sp.csr_matrix(part)
        part.sort_indices()
    spec = _matrix_spec(part, "matrix")
    n, g = spec["shape"]
    spec.update({"name": "matrix", "obs_names": [str(i) for i in range(n)], "obs": {}, "var_names": [str(j) for j in range(g)], "var": {}})
    return _core.matrix_scale(spec)


def _counts_matrix(adata, name: str):
    """(layer, use_raw) when neither is given: raw.X when X is cut to a gene subset of it
    (`adata.raw = adata`, then X restricted to the highly variable genes: raw measures at least
    RAW_GENE_SUPERSET_RATIO times the genes) and raw.X is not scaled; else X when it holds
    counts; else layers['counts'] or raw.X when they do (CELLxGENE files keep normalised values in X and the counts in raw.X; the
    engine normalises counts itself and thins them for depth augmentation; also when X is an
    empty placeholder); else, when X is scaled or empty, the first of those two that is not
    (scanpy keeps log1p(CP10k) in raw before scaling X); else X."""
    if adata.X is None:
        return None, False
    if adata.raw is not None and adata.raw.n_vars >= _core.RAW_GENE_SUPERSET_RATIO * adata.n_vars:
        scale = _scale(adata.raw.X)
        if scale not in ("scaled", "unknown", "empty"):
            _note(f"{name}.X measures {adata.n_vars} genes and {name}.raw.X {adata.raw.n_vars} (X cut to a gene subset, "
                      f"e.g. highly variable genes): {name}.raw.X read (it looks {scale}; layer='X' reads X)")
            return None, True
    candidates = ([("counts", False)] if "counts" in adata.layers else []) + ([(None, True)] if adata.raw is not None else [])
    if not candidates:
        return "X", False
    seen = _scale(adata.X)
    if seen == "raw-counts":
        return "X", False  # (an empty X defers to counts elsewhere)
    usable = None
    for layer, use_raw in candidates:
        where = f"{name}.raw.X" if use_raw else f"{name}.layers['{layer}']"
        scale = _scale(adata.raw.X if use_raw else adata.layers[layer])
        if scale == "raw-counts":
            _note(f"{name}.X looks {seen} and {where} holds raw counts: {where} read (celltyper normalises counts "
                      f"itself; layer='X' reads X)")
            return layer, use_raw
        if usable is None and scale not in ("scaled", "unknown", "empty"):
            usable = (layer, use_raw, where, scale)
    if seen in ("scaled", "empty") and usable is not None:
        layer, use_raw, where, scale = usable
        _note(f"{name}.X looks {seen} and no matrix holds counts; {where} looks {scale}: {where} read")
        return layer, use_raw
    return "X", False


def _with_term_ids(adata, columns: Sequence[str], label: str) -> list:
    """`columns` and, when obs has it, the CELLxGENE column of Cell Ontology ids beside `label`
    (cell_type -> cell_type_ontology_term_id), from which training takes the classes' CL ids."""
    companion = f"{label}_ontology_term_id"
    return list(columns) + ([companion] if companion in adata.obs.columns and companion not in columns else [])


def _strip(reference: Optional[str], prefix: str = "obs", what: str = "a column") -> Optional[str]:
    if reference is None:
        return None
    if not isinstance(reference, str):
        raise TypeError(f"{what} is named by a str (e.g. 'cell_type' or '{prefix}:cell_type'), not {type(reference).__name__}")
    return reference[len(prefix) + 1:] if reference.startswith(prefix + ":") else reference


def _label_columns(label) -> List[str]:
    """label= as columns: a str, or several (a list) for references labelled in differently named
    columns, each reference reading the first it has (`--label obs:A,obs:B`)."""
    if isinstance(label, str) or label is None:
        return [_strip(label, what="label")] if label else []
    if not isinstance(label, (list, tuple)) or not label:
        raise TypeError(f"label is named by a str (e.g. 'cell_type') or a list of them, not {type(label).__name__}")
    columns = [_strip(column, what="each label") for column in label]
    if len(columns) > 1 and any("," in column for column in columns):
        raise ValueError(f"label={columns!r}: a column whose name holds a comma cannot be one of several label columns (the engine "
                         "separates them by commas); rename it (adata.obs.rename(columns=...))")
    return columns


def _label_of(adata, columns: Sequence[str], name: str, several: bool) -> str:
    """The first of `columns` the AnnData's obs has (as the engine's label_column_of), or a
    ValueError naming them and, with several references, the list form."""
    for column in columns:
        if column in adata.obs.columns:
            return column
    hint = (f"; references labelled in differently named columns: label=['{columns[0]}', 'COLUMN'], each reference reading the first it has"
            if several and len(columns) == 1 else "")
    raise ValueError(f"{name}: no obs column {' nor '.join(repr(c) for c in columns)} "
                     f"(available: {', '.join(map(str, adata.obs.columns))}){hint}")


def _number(value, name: str, *, integer: bool = False, minimum: Optional[float] = None, maximum: Optional[float] = None):
    """`value` as a float (or int), or TypeError / ValueError naming the keyword argument."""
    import numbers

    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {'an integer' if integer else 'a number'}, not {type(value).__name__} ({value!r})")
    value = int(value) if integer else float(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f">= {minimum:g}" if maximum is None else f"in [{minimum:g}, {maximum:g}]"
        raise ValueError(f"{name}={value:g} is not {bounds}")
    return value


def _named_references(adata):
    """(names, AnnData objects) of train's / cv's `adata`: a dict's keys, else "reference 1", ...
    for a list, "AnnData" for one object."""
    if isinstance(adata, dict):
        return [str(k) for k in adata.keys()], list(adata.values())
    references = list(adata) if isinstance(adata, (list, tuple)) else [adata]
    return ([f"reference {i + 1}" for i in range(len(references))] if len(references) > 1 else ["AnnData"]), references


def _require_anndata(adata, name: str = "adata") -> None:
    if isinstance(adata, dict):  # (train / cv: references by name)
        for key, item in adata.items():
            _require_anndata(item, f"{name}[{key!r}]")
        return
    if isinstance(adata, (list, tuple)):
        for item in adata:
            _require_anndata(item, name)
        return
    modalities = getattr(adata, "mod", None)
    if isinstance(modalities, Mapping) and not hasattr(adata, "layers"):  # (a MuData: muon's multimodal object)
        names = list(modalities.keys())
        pick = next((str(n) for n in names if str(n).lower() in ("rna", "gex", "gene expression", "mrna")), "NAME")
        raise TypeError(f"{name}: a MuData object (modalities {', '.join(map(str, names)) or 'none'}): pass the gene-expression "
                        f"modality, {name}['{pick}'] (an AnnData)")
    if not hasattr(adata, "obs") or not hasattr(adata, "var"):
        raise TypeError(f"{name}: an AnnData object is needed, not {type(adata).__name__}")


def _actual(adata, verb: str) -> None:
    """A view (adata[mask]) about to take columns becomes an actual AnnData once, with one
    warning, as scanpy's functions do (else every column written copies it again)."""
    if getattr(adata, "is_view", False):
        _warn(f"{verb}: adata is a view of another AnnData; it is made an actual AnnData (a copy) to take the results")
        adata._init_as_actual(adata.copy())


# ---- models -----------------------------------------------------------------------------------

class Model:
    """A trained cell-type model (the same file format as `celltyper train`). `summary` is the report
    of the run that trained it (warnings, cell counts), also of a model read from a file (models
    written before celltyper kept the warnings in the file have none)."""

    def __init__(self, core, summary: Optional[dict] = None):
        self._core = core
        self.summary = summary or self._summary_from_file()

    def _summary_from_file(self) -> dict:
        provenance = self.provenance
        if "n_cells" not in provenance:
            return {}
        validation = self.validation
        return {"n_cells": provenance.get("n_cells", 0), "n_dropped_unlabelled": provenance.get("n_dropped_unlabelled", 0),
                "n_dropped_empty": provenance.get("n_dropped_empty", 0), "n_validation": validation.get("n_cells", 0) if validation else 0,
                "n_thinned_copies": provenance.get("n_thinned_copies", 0), "warnings": list(provenance.get("training_warnings", [])),
                "validation": validation or None,
                "calibration": json.loads(self._core._calibration_json)}

    @property
    def classes(self) -> List[str]:
        """The cell types the model tells apart (its probability columns, in order)."""
        return list(self._core.classes)

    @property
    def cl_ids(self) -> List[str]:
        """Each class's Cell Ontology id ("" where it has none)."""
        return list(self._core.cl_ids)

    @property
    def features(self) -> str:
        """"expression" (log-normalised expression of a gene panel) or "genept" (GenePT-w): the
        feature route (CellTypist's `model.features`, the gene list, is `panel` here)."""
        return self._core.features

    @property
    def classifier(self) -> str:
        """"logreg", "mlp", "xgboost" or "knn"."""
        return self._core.classifier

    @property
    def panel(self) -> List[str]:
        """The gene symbols of an expression model's features, in feature order ([] for GenePT-w)."""
        return list(self._core.panel)

    @property
    def validation(self) -> dict:
        """Metrics on the held-out cells of training ({} when none were held out)."""
        value = json.loads(self._core._validation_json)
        return value if isinstance(value, dict) else {}

    @property
    def provenance(self) -> dict:
        """How the model was made: references (path or AnnData, matrix, cells), labels, options."""
        return json.loads(self._core._provenance_json)

    def markers(self, n: int = 10):
        """Each type's `n` marker genes, from the reference cells the model keeps: the genes whose
        mean log1p(CP10k) in the type exceeds their mean over the other types by most, among genes
        a fifth of the type's cells express (what scanpy's `rank_genes_groups` looks for; unlike
        CellTypist's `extract_top_markers`, which ranks a model's coefficients, these are read from
        expression, the same for every classifier; `celltyper inspect MODEL --markers N`). A pandas DataFrame, one row
        per type and gene, best first: class, cl_id, rank (1 = best), gene, mean, mean_elsewhere
        (the other types' mean), fraction and fraction_elsewhere (shares of cells expressing it).
        ValueError when the model keeps no reference cells (trained with reference_sample=0).

        n : marker genes per type (a positive whole number).
        """
        import numbers
        import pandas as pd
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"n={n!r}: a whole number of genes per type is needed")
        if n < 1:
            raise ValueError(f"n={n} must be at least 1")
        try:
            listed = json.loads(self._core._markers_json(int(n)))
        except ValueError as error:  # (the engine names train's flag: say train()'s keyword)
            raise ValueError(train.speak(str(error))) from None
        rows = []
        for markers in listed:
            for rank, gene in enumerate(markers["genes"], start=1):
                rows.append({"class": markers["class"], "cl_id": markers["cl_id"], "rank": rank, "gene": gene["symbol"],
                             "mean": gene["mean"], "mean_elsewhere": gene["mean_elsewhere"], "fraction": gene["fraction"],
                             "fraction_elsewhere": gene["fraction_elsewhere"]})
        columns = ["class", "cl_id", "rank", "gene", "mean", "mean_elsewhere", "fraction", "fraction_elsewhere"]
        return pd.DataFrame(rows, columns=columns)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write the model file (HDF5; `celltyper annotate -m PATH` and `load_model` read it)."""
        self._core.save(os.fspath(path))

    def __repr__(self) -> str:
        return f"celltyper.Model({self.classifier} on {self.features}, {len(self.classes)} classes)"

    # pickle, copy.deepcopy, joblib and multiprocessing: the model travels as its file's bytes.
    def __getstate__(self) -> dict:
        import tempfile
        with tempfile.TemporaryDirectory(prefix="celltyper-") as folder:
            path = os.path.join(folder, "model.h5")
            self._core.save(path)
            with open(path, "rb") as handle:
                return {"model_file": handle.read(), "summary": self.summary}

    def __setstate__(self, state: dict) -> None:
        import tempfile
        with tempfile.TemporaryDirectory(prefix="celltyper-") as folder:
            path = os.path.join(folder, "model.h5")
            with open(path, "wb") as handle:
                handle.write(state["model_file"])
            self._core = _core.load_model(path)
        self.summary = state.get("summary", {})


def load_model(path: Union[str, os.PathLike]) -> Model:
    """Read a model file, written by `celltyper train`, `Model.save` or `annotate --save-model`
    (FileNotFoundError when there is none; ValueError when the file is not a celltyper model).

    path : the model file (str or os.PathLike).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file (cannot open the model)")
    return Model(_core.load_model(path))


# Rows the engine handles at a time, as bytes of their values: the matrix is already in memory, so
# small blocks cost no speed and keep the engine's own memory near 10% of a 100k-cell X or less.
_MEMORY_LIMIT = 8 << 20


_FLAGS = ("hierarchical", "refit", "allow_low_coverage", "harmonize_labels", "flat_labels", "calibrate", "balance_references",
          "augment_depth", "ensemble", "use_ontology", "own_gene_names")


def _flag(value, name: str) -> bool:
    """`value` as a bool, or TypeError naming the keyword argument: the text 'false' is no False."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, np.ndarray) and value.shape == () and value.dtype == bool):
        return bool(value)
    raise TypeError(f"{name} must be True or False, not {type(value).__name__} ({value!r})")


def _common(options: dict, *, threads: int, verbose: bool, gene_table, genes, gene_column, normalization) -> dict:
    for name in _FLAGS:
        if name in options:
            options[name] = _flag(options[name], name)
    verbose = _flag(verbose, "verbose")
    for name, value, what in (("gene_table", gene_table, "a gene table TSV (columns entrez_id and symbol, optionally aliases and ensembl_ids)"),
                              ("genes", genes, "a gene store .h5 (celltyper genes embed)")):
        if value is not None and value is not False and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} is the path (str or os.PathLike) of {what}, not {type(value).__name__}")
    for what, path in (("gene store", genes), ("gene table", gene_table), ("label map", options.get("label_map")),
                       ("ontology", options.get("ontology"))):
        if path and not os.path.exists(os.fspath(path)):  # (as a model path: the error of a missing file)
            raise FileNotFoundError(f"cannot open {what} {os.fspath(path)}: no such file")
    options.update({"threads": int(threads), "verbose": bool(verbose), "memory_limit": _MEMORY_LIMIT, "gene_table": os.fspath(gene_table) if gene_table else "",
                    "genes": os.fspath(genes) if genes else _default_store(), "gene_column": gene_column or "",
                    "normalization": normalization})
    return options


def _hyperparameters(given: dict, verb=None) -> dict:
    """train()'s (or cv()'s) **hyperparameters as the engine takes them: numbers, `lambda_` for
    XGBoost's `lambda` (a Python keyword). A value that is not a number is not a hyperparameter: a
    misspelt keyword argument (classifer="mlp"), a TypeError naming the likely one."""
    import difflib
    import inspect
    import numbers

    out = {}
    verb = verb or train
    keywords = [k for k in inspect.signature(verb).parameters if k != "hyperparameters"]
    for key, value in given.items():
        if hint := _other_tool_hint(verb.__name__, key):
            raise TypeError(hint)
        if isinstance(value, str):  # (a number written as text, from a config file: "0.1")
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            close = difflib.get_close_matches(key, keywords, n=1, cutoff=0.7)
            if close:
                raise TypeError(f"{verb.__name__}() got an unexpected keyword argument '{key}'; did you mean '{close[0]}'?")
            raise TypeError(f"{key}={value!r}: a classifier's hyperparameters are numbers (or {verb.__name__}() has no keyword argument "
                            f"'{key}')")
        out[key[:-1] if key.endswith("_") and _keyword.iskeyword(key[:-1]) else key] = float(value)
    return out


@_pythonic
def train(adata, label: Union[str, Sequence[str]], *, group: Optional[str] = None, classifier: str = "logreg", features: str = "expression",
          n_genes: int = 3000, validation_fraction: float = 0.2, seed: int = 0, reference_sample: int = 20000,
          label_map: Optional[str] = None, label_dataset: Optional[str] = None, layer: Optional[str] = None, use_raw: bool = False,
          dims: int = 0, threads: int = 0, verbose: bool = False, gene_table=None, genes=None, gene_column: Optional[str] = None,
          normalization: str = "auto", harmonize_labels: bool = False, flat_labels: bool = False, ontology=None,
          balance_references: bool = False, gene_pooling: str = "impute", augment_depth: bool = True,
          augment_depth_max_copies: int = 20000, calibrate: bool = True, own_gene_names: bool = False,
          **hyperparameters: float) -> Model:
    """Train a model on the labelled cells of `adata` (or a list of AnnData objects).

    `label` (and `group`) are obs columns ("obs:" prefix optional). The defaults are those of
    `celltyper train`; classifier hyperparameters (e.g. l2=0.01 for logreg) are keyword arguments.
    The classes get Cell Ontology ids from `label_map`, else from obs['<label>_ontology_term_id']
    when the AnnData has it (CELLxGENE files), else from the ontology when a label is a CL id, a
    term's name or an exact synonym (`model.cl_ids`; "" for the others).
    Pooling references labelled at different depths: `harmonize_labels=True` (with `label_map`
    and the installed Cell Ontology, or `ontology=`) makes labels CL terms and trains a coarse term
    as the summed probability of the classes below it (`celltyper train --harmonize-labels`).
    `augment_depth` (default on, as `celltyper train`): every reference cell holding counts also
    trains as a binomially thinned copy (10-50% of its counts, weight 0.3), so shallower queries
    from other chemistries look familiar; False trains on the reference cells alone. A reference
    of more than `augment_depth_max_copies` cells has a random subset of that many copied, each
    copy weighing proportionally more (0: every cell; `--augment-depth-max-copies`).

    Parameters (each as the `celltyper train` flag of the same name)
    ----------
    adata : AnnData, a list of AnnData, or a dict {name: AnnData}; the references (counts are
        best: see `layer`). A dict's names name the references in messages and validation.
    label, group : obs columns of the cell types and of the validation groups (a group's cells
        are held out together: donors, batches); group="file" with several references holds out
        whole references (`train --group file`). References labelled in differently named columns:
        label=["celltype", "bulk_labels"], each reference reading the first it has.
    classifier : "logreg" (default), "mlp", "xgboost" or "knn"; hyperparameters as keywords
        (`l2=0.01`; XGBoost's `lambda` as `lambda_=`).
    features : "expression" (default: log-normalised expression of informative genes) or
        "genept" (GenePT-w embeddings from the gene store `genes`).
    n_genes : the expression route's panel size (default 3000 informative genes).
    dims : GenePT-w: the first `dims` dimensions of the gene store (0: all).
    validation_fraction, seed : cells held out to report validation metrics (the saved model is
        refit on every cell); the seed of every random step.
    reference_sample : reference cells kept in the model (for refits on a query's genes and the
        unlike-every-type check).
    layer, use_raw : the matrix ("X", a layer name, or use_raw=True for adata.raw); default: the
        counts wherever they are (X, layers['counts'] or raw.X).
    label_map, label_dataset : TSV naming each label's CL id (columns label, cl_id; with a
        dataset column, label_dataset picks its rows).
    normalization : how the values are read: "auto" (default: by what they look like), "none",
        "cp10k", "log1p-cp10k", "relog1p-cp10k", "relog2-cp10k", "relog10-cp10k".
    gene_table, gene_column, genes : gene identifiers (default org.Hs.eg.db), the var column
        holding them (default: detected), the gene store (genept).
    harmonize_labels, ontology : labels as CL terms, coarse ones trained as the summed
        probability of the classes below them (above); `ontology` a Cell Ontology .obo or
        CELLxGENE .json (default: $CELLTYPER_ONTOLOGY, else the installed copy).
    flat_labels : with `harmonize_labels`, every term a class of its own (flat pooled training).
    balance_references : several references: weight cells so that each reference counts equally
        (a large one does not drown a small one).
    gene_pooling : several references measuring different genes: "impute" (default: every gene;
        a reference's unmeasured genes get the others' mean), "shared" (the genes every reference
        measured; always for genept) or "all" (unmeasured genes count as zeros).
    augment_depth, augment_depth_max_copies : depth augmentation (above).
    own_gene_names : the genes are the references' var names as written (letter case aside), not
        the gene table's: for another species whose names the table half-knows (by default only
        references it hardly names train so); a query must then name its genes the same way.
        Expression route only.
    calibrate : calibrate the scores (default on, as `celltyper train`): a temperature fitted on
        the validation cells' probabilities, so that a score reads as the chance that the call is
        right (`model.summary["calibration"]`); labels never change. False (`--no-calibrate`): the
        classifier's own probabilities.
    threads : 0 = all cores.
    verbose : progress on sys.stderr.

    Returns a `Model` (`model.summary`: the run's warnings and counts; `model.validation`).
    """
    _require_anndata(adata)
    n_genes = _number(n_genes, "n_genes", integer=True, minimum=1)
    validation_fraction = _number(validation_fraction, "validation_fraction", minimum=0, maximum=0.99)
    seed = _number(seed, "seed", integer=True, minimum=0)
    reference_sample = _number(reference_sample, "reference_sample", integer=True, minimum=0)
    dims = _number(dims, "dims", integer=True, minimum=0)
    threads = _number(threads, "threads", integer=True, minimum=0, maximum=1024)
    augment_depth_max_copies = _number(augment_depth_max_copies, "augment_depth_max_copies", integer=True, minimum=0)
    names, references = _named_references(adata)
    labels = _label_columns(label)
    group = _strip(group, what="group")
    if group == "file" and len(references) < 2:
        raise ValueError("group='file' validates on whole references held out: pass several AnnData objects (a list, or a dict "
                         "{name: AnnData})")
    others = [group] if group and group != "file" else []  # ("file": each AnnData is a group, as --group file)
    specs = []
    for a, name in zip(references, names):
        own = _label_of(a, labels, name, len(references) > 1)
        specs.append(_dataset(a, layer=layer, use_raw=use_raw, obs_columns=_with_term_ids(a, [own] + others, own), name=name))
    options = _common({"label": ",".join(labels), "group": group or "", "classifier": classifier, "features": features, "n_genes": n_genes,
                       "validation_fraction": validation_fraction, "seed": seed, "reference_sample": reference_sample,
                       "label_map": os.fspath(label_map) if label_map else "", "label_dataset": label_dataset or "", "dims": dims,
                       "hyperparameters": _hyperparameters(hyperparameters),
                       "harmonize_labels": harmonize_labels, "flat_labels": flat_labels, "ontology": os.fspath(ontology) if ontology else "",
                       "balance_references": balance_references, "gene_pooling": gene_pooling, "augment_depth": augment_depth,
                       "augment_depth_max_copies": augment_depth_max_copies, "calibrate": calibrate,
                       "own_gene_names": own_gene_names, "matrix": _matrix_request(layer, use_raw)},
                      threads=threads, verbose=verbose, gene_table=gene_table, genes=genes, gene_column=gene_column,
                      normalization=normalization)
    try:
        core, summary = _core.train(specs, options)
    except ValueError as error:  # a misspelt keyword (n_gene=) lands among the hyperparameters: say so
        import difflib
        import inspect
        for key in hyperparameters:
            close = difflib.get_close_matches(key, list(inspect.signature(train).parameters), n=1, cutoff=0.8)
            if f"has no hyperparameter '{key}'" in str(error) and close:
                raise TypeError(f"train() got an unexpected keyword argument '{key}'; did you mean '{close[0]}'?") from None
        raise
    model = Model(core, json.loads(summary))
    for warning in model.summary.get("warnings", []):  # as `celltyper train` prints them
        _tell(train.speak(warning))
    return model


# ---- annotation -------------------------------------------------------------------------------

@dataclass
class AnnotationResult:
    """Per-cell results of `annotate` (pandas objects indexed by obs_names)."""
    labels: Any
    scores: Any
    ontology_ids: Any
    probabilities: Any
    gene_coverage: Any
    top_labels: Any = None
    majority_vote: Any = None
    flat_labels: Any = None
    # Spearman correlation with the best-matching reference type, whether the cell resembles
    # none of them (below what that type's own cells reach at its depth), and whether it could be
    # judged at all (False: it detects too few of the compared genes, or it is empty or left
    # Unassigned; unlike_reference is then False for want of a verdict); None when the model
    # carries no type profiles (models from before them)
    similarity: Any = None
    unlike_reference: Any = None
    similarity_judged: Any = None
    models: List[dict] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    # what was chosen as you would have (the matrix read, the gene names matched, a refit), as
    # `celltyper annotate`'s "note:" lines; also logged at INFO on logging.getLogger("celltyper")
    notes: List[str] = field(default_factory=list)
    model: Optional[Model] = None  # reference mode: the model trained on the fly
    # samples of a joined AnnData padded with zeros, annotated on their own genes (annotate(group=))
    panel_groups: List[dict] = field(default_factory=list)
    # per sample of annotate(group="COLUMN"): cells, label counts, median score, low-score and unlike cells
    samples: List[dict] = field(default_factory=list)
    # the matrix of the query that was read: "AnnData.X", "AnnData.raw.X", "AnnData.layers['counts']"
    matrix: str = ""
    # the Cell Ontology's name of each cell's CL id (obs['celltyper_ontology_name']; None without ids or an ontology)
    ontology_names: Any = None

    def label_counts(self):
        return self.labels.value_counts()

    def __repr__(self) -> str:  # (a notebook cell's last line: a summary, not every Series in full)
        counts = self.labels.value_counts()
        top = ", ".join(f"{label} {count}" for label, count in counts.head(5).items() if count > 0)
        more = f", ... ({int((counts > 0).sum())} labels)" if int((counts > 0).sum()) > 5 else ""
        extra = f", {len(self.panel_groups)} padded sample(s) annotated on their own genes" if self.panel_groups else ""
        return (f"AnnotationResult({len(self.labels)} cells: {top}{more}; median score {float(np.median(self.scores)) if len(self.scores) else 0:.2f}; "
                f"{len(self.warnings)} warning(s){extra})")


@_pythonic
@_collecting_notes
def annotate(adata, model=None, *, reference=None, label: Union[str, Sequence[str], None] = None, min_score: float = 0.0, top_k: int = 0,
             over_clustering: Optional[str] = None, group: Optional[str] = None, hierarchical: bool = False,
             unassign_unlike: bool = False, refit: bool = True,
             allow_low_coverage: bool = False, layer: Optional[str] = None, use_raw: bool = False, reference_layer: Optional[str] = None, classifier: str = "logreg",
             features: str = "expression", label_map: Optional[str] = None, label_dataset: Optional[str] = None, keep_model: Optional[bool] = None,
             inplace: bool = True, threads: int = 0, verbose: bool = False, gene_table=None, genes=None, gene_column: Optional[str] = None,
             normalization: str = "auto", ontology=None, harmonize_labels: bool = False, calibrate: bool = True,
             gene_pooling: str = "impute", balance_references: bool = False, own_gene_names: bool = False) -> AnnotationResult:
    """Label every cell of `adata` with a model (`model=`: a Model, a path, or a list of them,
    averaged) or by training on the fly on `reference=` AnnData (with `label=` its obs column).

    With `inplace` (the default), adds obs['celltyper_label'], ['celltyper_score'],
    ['celltyper_ontology_id'] and ['celltyper_ontology_name'] (when the classes have CL ids; the name
    from the Cell Ontology installed or given as ontology=), ['celltyper_gene_coverage'],
    ['celltyper_similarity'], ['celltyper_unlike_reference'] (cells that resemble none of the
    reference's types; the result's warnings say when they are many) and
    ['celltyper_similarity_judged'] (cells deep enough for that check), the top-k and majority-vote
    columns when asked, obsm['celltyper_probabilities'] and
    uns['celltyper_probability_classes'], and uns['celltyper_annotation'] (JSON text: the
    celltyper version, models, options, label counts and warnings), as `celltyper annotate` writes
    them.

    `group`: for an AnnData joined from samples measuring different genes (anndata.concat(
    join="outer"), a CELLxGENE Census query), the obs column telling the samples, or "none";
    by default any categorical (or text) obs column of 2-64 values. A sample padded with zeros on genes
    it never measured is annotated on the genes it measured (`result.panel_groups` says which).
    A column named here also gets a summary per sample (`result.samples`: cells, label counts,
    median score, cells below 0.5, cells unlike the reference) and warnings naming a sample
    whose cells are shallow or unlike every reference type while the whole query's are not.

    Parameters (each as the `celltyper annotate` flag of the same name)
    ----------
    adata : the AnnData to label (its counts are best: see `layer`).
    model : a Model, a model file's path, or a list of them (their probabilities averaged).
    group : samples of a joined AnnData (above): an obs column, "none", or None (detected).
    min_score : cells whose best probability is below it are "Unassigned" (0: none are; with
        `hierarchical`, 0 means 0.5).
    top_k : also the k best labels and scores per cell (obs celltyper_top{i}_label / _score).
    over_clustering : an obs column of clusters, or the clusters themselves (a Series, array or
        list, one per cell, as CellTypist takes them): adds celltyper_majority_vote, each cluster's
        most frequent label (CellTypist's over-clustering).
    hierarchical : the most specific Cell Ontology term whose summed probability reaches
        min_score (needs CL ids: a label map or CL-named classes); celltyper_flat_label keeps the
        class.
    unassign_unlike : cells that resemble none of the reference's types (celltyper_unlike_reference)
        are "Unassigned", as SingleR's pruned labels (a type the reference lacks is otherwise named
        by its nearest class, often with a high score; min_score does not catch it); up to about
        2% of a query of the reference's own types are flagged too, and cells too shallow to
        judge keep their labels. Their scores, probabilities and top-k stay; a majority vote
        counts them as Unassigned.
    refit : when the query lacks part of a model's genes, refit the model on the shared genes
        from its reference sample (default True; False uses the model as it is).
    allow_low_coverage : annotate even when the query measures very few of the model's genes.
    layer, use_raw : the query's matrix (as in `train`); `result.matrix` says which was read.
    reference, label, reference_layer, classifier, features, label_map, label_dataset, harmonize_labels, calibrate :
        reference mode: the model trained on the fly (as `train`), on the genes the query shares
        (harmonize_labels: references labelled at different depths pool as Cell Ontology terms;
        calibrate: its scores calibrated on 20% of the reference cells held out, as `train`).
        `reference` is an AnnData, a list of them or a dict {name: AnnData}.
    gene_pooling, balance_references : reference mode with several references, as `train`'s.
    own_gene_names : reference mode: train on the references' var names as written, as `train`'s.
    inplace : write the columns into `adata` (a view is made an actual AnnData first, with a
        warning); False leaves it untouched.
    ontology : the Cell Ontology for `hierarchical` (.obo or CELLxGENE .json; default:
        $CELLTYPER_ONTOLOGY, else the installed copy), and for reference mode's label CL ids.
    keep_model : ignored (deprecated; a model trained on the fly is always `result.model`).
    gene_table, genes, gene_column, normalization, threads, verbose : as in `train`.

    Returns an `AnnotationResult` (labels, scores, probabilities, ... as pandas objects).
    """
    if keep_model is not None:  # (the trained model always keeps its reference sample now)
        _warn("annotate(keep_model=) is no longer needed and is ignored: result.model can always refit", DeprecationWarning)
    import pandas as pd

    _require_anndata(adata)
    if model is not None and reference is not None:
        raise ValueError("model= and reference= exclude each other: annotate with a trained model, or train one on the fly on "
                         "reference= (AnnData) with label=")
    if model is None and reference is None:
        raise ValueError("annotate needs either model= (a Model, a path or a list) or reference= (AnnData) with label=")
    if harmonize_labels and reference is None:
        raise ValueError("harmonize_labels=True applies to reference mode (reference=AnnData); a model was trained with its labels")
    if reference is None and (gene_pooling != "impute" or balance_references or own_gene_names):
        raise ValueError("gene_pooling=, balance_references= and own_gene_names= apply to reference mode (reference=AnnData objects); a model was "
                         "trained with its own")
    min_score = _number(min_score, "min_score", minimum=0, maximum=1)
    top_k = _number(top_k, "top_k", integer=True, minimum=0, maximum=2**31 - 1)
    threads = _number(threads, "threads", integer=True, minimum=0, maximum=1024)
    inplace = _flag(inplace, "inplace")
    unassign_unlike = _flag(unassign_unlike, "unassign_unlike")
    if inplace:
        _actual(adata, "annotate")
    models = [] if model is None else (list(model) if isinstance(model, (list, tuple)) else [model])
    for given in models:
        if hasattr(given, "obs") and hasattr(given, "var"):
            raise TypeError("annotate(adata, model): model is an AnnData; pass a Model or a model file, or train on the fly with "
                            "reference=AnnData, label='obs:COLUMN'")
    cores = [(m if isinstance(m, Model) else load_model(m))._core for m in models]
    clusters = None  # (CellTypist also takes the clusters themselves: a Series, array or list, one per cell)
    if over_clustering is not None and not isinstance(over_clustering, str) and hasattr(over_clustering, "__len__"):
        if len(over_clustering) != adata.n_obs:
            raise ValueError(f"over_clustering: {len(over_clustering)} values for {adata.n_obs} cells (an obs column's name, or one "
                             "cluster per cell)")
        import pandas as pd
        clusters = over_clustering
        if isinstance(clusters, pd.Series) and not clusters.index.equals(adata.obs.index) and clusters.index.is_unique \
                and adata.obs.index.isin(clusters.index).all():
            clusters = clusters.reindex(adata.obs.index)  # (a Series of the cells in another order: by name)
        over_clustering = "over_clustering (given)"
    over = _strip(over_clustering, what="over_clustering")
    group = _strip(group, what="group")
    if group is None:  # the columns that may tell samples apart, as the command line reads an .h5ad's
        samples = []
        for column in adata.obs.columns:
            values = adata.obs[column]
            if str(values.dtype) == "category":
                if 2 <= len(values.cat.categories) <= 64:
                    samples.append(str(column))
            elif values.dtype == object or str(values.dtype) == "string":  # text: 2-64 distinct values
                if 2 <= values.nunique(dropna=True) <= 64:
                    samples.append(str(column))
    else:
        samples = [] if group == "none" else [group]
    query = _dataset(adata, layer=layer, use_raw=use_raw,
                     obs_columns=list(dict.fromkeys(([over] if over and clusters is None else []) + samples)), name="AnnData")
    if clusters is not None:
        query["obs"][over] = _column(np.asarray(clusters, dtype=object))
    if verbose:
        import sys
        sys.stderr.write(f"celltyper: query: {query['name']} read\n")
    references: list = []
    if reference is not None:
        if not label:
            raise ValueError("reference= needs label= (the obs column of the reference's cell types)")
        labels = _label_columns(label)
        label = ",".join(labels)
        names, items = _named_references(reference)  # (a dict names them, as train's and cv's references)
        if not isinstance(reference, dict):
            names = [f"reference {i + 1}" for i in range(len(items))] if len(items) > 1 else ["reference"]
        for r, name in zip(items, names):
            own = _label_of(r, labels, name, len(items) > 1)
            references.append(_dataset(r, layer=reference_layer, obs_columns=_with_term_ids(r, [own], own), name=name))
    options = _common({"min_score": min_score, "top_k": top_k, "over_clustering": over or "", "group": group or "",
                       "hierarchical": hierarchical, "unassign_unlike": unassign_unlike,
                       "refit": refit, "allow_low_coverage": allow_low_coverage, "label": label or "", "classifier": classifier,
                       "features": features, "label_map": os.fspath(label_map) if label_map else "", "label_dataset": label_dataset or "",
                       "harmonize_labels": harmonize_labels, "calibrate": calibrate, "gene_pooling": gene_pooling,
                       "balance_references": balance_references, "own_gene_names": own_gene_names,
                       "ontology": os.fspath(ontology) if ontology else "", "matrix": _matrix_request(reference_layer, False)},
                      threads=threads, verbose=verbose, gene_table=gene_table, genes=genes, gene_column=gene_column,
                      normalization=normalization)
    out = _core.annotate(query, cores, references, options)
    index = pd.Index(query["obs_names"])
    # Categories: the labels that occur, in the model's class order, then Unassigned and other
    # labels (coarser terms): as scanpy's clusterings, no empty category (rank_genes_groups fails
    # on one, plot legends list it). Compare two annotations with .astype(str).
    categories = list(dict.fromkeys([str(c) for c in out["class_names"]] + ["Unassigned"] + sorted(set(out["labels"]))))
    labels = pd.Series(pd.Categorical(out["labels"], categories=categories), index=index, name="celltyper_label")
    labels = labels.cat.remove_unused_categories()
    scores = pd.Series(np.asarray(out["scores"]), index=index, name="celltyper_score")
    has_ids = any(out["class_cl_ids"])
    ids = pd.Series(pd.Categorical([i if i else None for i in out["cl_ids"]]), index=index, name="celltyper_ontology_id")
    names = None
    if has_ids and out["has_cl_names"]:
        names = pd.Series(pd.Categorical([n if n else None for n in out["cl_names"]]), index=index, name="celltyper_ontology_name")
    probabilities = pd.DataFrame(np.asarray(out["probabilities"]), index=index, columns=list(out["class_names"]))
    coverage = pd.Series(np.asarray(out["gene_coverage"]), index=index, name="celltyper_gene_coverage") if len(out["gene_coverage"]) == len(index) else None
    similarity = unlike = judged = None
    if out["has_similarity"]:
        similarity = pd.Series(np.asarray(out["similarity"]), index=index, name="celltyper_similarity")
        unlike = pd.Series(np.asarray(out["unlike_reference"], dtype=bool), index=index, name="celltyper_unlike_reference")
        judged = pd.Series(np.asarray(out["similarity_judged"], dtype=bool), index=index, name="celltyper_similarity_judged")
    top = None
    if out["top_labels"]:
        top = pd.DataFrame(index=index)
        for k, (top_labels, top_scores) in enumerate(zip(out["top_labels"], out["top_scores"]), start=1):
            top[f"celltyper_top{k}_label"] = pd.Categorical(top_labels)
            top[f"celltyper_top{k}_score"] = np.asarray(top_scores, dtype=np.float32)
    majority = pd.Series(pd.Categorical(out["majority_vote"]), index=index, name="celltyper_majority_vote") if out["has_majority_vote"] else None
    flat = pd.Series(pd.Categorical(out["flat_labels"]), index=index, name="celltyper_flat_label") if out["has_flat_labels"] else None
    result = AnnotationResult(labels=labels, scores=scores, ontology_ids=ids if has_ids else None, probabilities=probabilities,
                              gene_coverage=coverage, top_labels=top, majority_vote=majority, flat_labels=flat,
                              similarity=similarity, unlike_reference=unlike, similarity_judged=judged,
                              models=json.loads(out["models"]), warnings=list(out["warnings"]),
                              panel_groups=json.loads(out["panel_groups"]), samples=_in_category_order(json.loads(out["samples"]), adata, group),
                              matrix=query["name"],
                              ontology_names=names)
    if "trained_model" in out:
        result.model = Model(out["trained_model"], json.loads(out["trained_summary"]))
    spoken = [annotate.speak(warning) for warning in result.warnings]
    result.warnings = []
    for warning in spoken:  # (a loop, not a comprehension: its frame would take a stack level)
        if _tell(warning):
            result.warnings.append(warning)
        else:
            result.notes.append(warning[len(_NOTE):])
    if inplace:
        obs = adata.obs
        # a previous annotation's columns go first (its top-k, ids or votes would sit beside these labels)
        stale = [c for c in obs.columns if _core.is_annotation_column(str(c))]
        if stale:
            obs.drop(columns=stale, inplace=True)
        obs["celltyper_label"] = labels.values
        obs["celltyper_score"] = scores.values.astype(np.float32)
        if has_ids:
            obs["celltyper_ontology_id"] = ids.values
            if names is not None:
                obs["celltyper_ontology_name"] = names.values
        if top is not None:
            for column in top.columns:
                obs[column] = top[column].values
        if majority is not None:
            obs["celltyper_majority_vote"] = majority.values
        if flat is not None:
            obs["celltyper_flat_label"] = flat.values
        if coverage is not None:
            obs["celltyper_gene_coverage"] = coverage.values.astype(np.float32)
        if similarity is not None:
            obs["celltyper_similarity"] = similarity.values.astype(np.float32)
            obs["celltyper_unlike_reference"] = unlike.values
            obs["celltyper_similarity_judged"] = judged.values
        adata.obsm["celltyper_probabilities"] = probabilities.to_numpy(dtype=np.float32)
        adata.uns["celltyper_probability_classes"] = [str(c) for c in out["class_names"]]
        adata.uns["celltyper_probability_cl_ids"] = [str(c) for c in out["class_cl_ids"]]
        # What the run did (as `celltyper annotate` writes it): JSON text, as uns['celltyper_embedding']
        record = json.loads(out["record"])
        model_names = [m if isinstance(m, str) else os.fspath(m) if isinstance(m, os.PathLike) else "a Model object" for m in models]
        model_names += ["reference mode"] if reference is not None else []
        for entry, name in zip(record["models"], model_names):
            entry["model"] = name
        record["warnings"] = list(result.warnings) + [_NOTE + note for note in result.notes]
        adata.uns["celltyper_annotation"] = json.dumps(record)
    return result


# ---- embedding and evaluation -------------------------------------------------------------------

@_pythonic
def embed(adata, *, genes=None, dims: int = 0, layer: Optional[str] = None, use_raw: bool = False, key: str = "X_celltyper",
          inplace: bool = True, threads: int = 0, verbose: bool = False, gene_table=None, gene_column: Optional[str] = None,
          normalization: str = "auto", min_coverage: float = 0.2):
    """GenePT-w cell embeddings (expression-weighted sums of gene vectors, L2-normalised), as
    `celltyper embed`: writes obsm[key], obs['celltyper_embedding_empty'] (cells without an
    expressed gene with a vector: zero embeddings) and uns['celltyper_embedding'] (its provenance,
    JSON; with `inplace`) and returns the cells x dims array.

    Parameters (each as the `celltyper embed` flag of the same name)
    ----------
    adata : AnnData; its counts are best (see `layer`).
    genes, dims : the gene store (default: the installed one) and its first `dims` dimensions
        (0: all).
    layer, use_raw : the matrix ("X", a layer name, or use_raw=True for adata.raw); default: the
        counts wherever they are (X, layers['counts'] or raw.X).
    key, inplace : the obsm key written; False leaves `adata` untouched.
    min_coverage : fail when the median cell has less than this share of its counts on genes
        with a vector (lower it for a small store).
    gene_table, gene_column, normalization, threads, verbose : as in `train`.
    """
    _require_anndata(adata)
    dims = _number(dims, "dims", integer=True, minimum=0)
    threads = _number(threads, "threads", integer=True, minimum=0, maximum=1024)
    min_coverage = _number(min_coverage, "min_coverage", minimum=0, maximum=1)
    inplace = _flag(inplace, "inplace")
    if inplace:
        _actual(adata, "embed")
    spec = _dataset(adata, layer=layer, use_raw=use_raw)
    options = _common({"dims": dims, "min_coverage": float(min_coverage)}, threads=threads, verbose=verbose, gene_table=gene_table,
                      genes=genes, gene_column=gene_column, normalization=normalization)
    values, info, empty = _core.embed(spec, options)
    values = np.asarray(values)
    info = json.loads(info)
    for warning in info.get("warnings", []):
        _tell(embed.speak(warning))
    if inplace:
        adata.obsm[key] = values
        adata.obs["celltyper_embedding_empty"] = np.asarray(empty, dtype=bool)
        adata.uns["celltyper_embedding"] = json.dumps(info.get("provenance", {}))  # (as `celltyper embed` writes an .h5ad)
    return values


@_pythonic
def evaluate(adata, truth: str, pred: str = "celltyper_label", *, group: Optional[str] = None, probabilities: str = "auto",
             label_map=None, label_dataset: Optional[str] = None, compare: str = "auto", ontology=None, use_ontology: bool = True,
             top_k: Sequence[int] = (1, 3, 5), report=None, embedding: str = "auto", max_points: int = 20000, seed: int = 0) -> dict:
    """Score predicted labels against true labels (obs columns), as `celltyper evaluate --json`:
    accuracy, macro/weighted F1, per-class metrics, confusion matrix, top-k accuracy from
    obsm['celltyper_probabilities'], and Cell Ontology metrics (hierarchical F, corrected
    accuracy) when the ontology is found. Returns the JSON document as a dict; its
    "unseen_types" entry (celltyper's predictions with the model's classes in uns) counts the
    cells of truth labels the model has no class for (nor a CL term above or below one) and how
    many of them, and of the others, were left Unassigned (`annotate(..., unassign_unlike=True)`).

    Parameters (each as the `celltyper evaluate` flag of the same name)
    ----------
    adata : AnnData holding both columns (an annotated one).
    truth, pred : obs columns of the true and predicted labels (or CL ids); pred defaults to
        celltyper_label.
    group : an obs column; each of its groups (held-out sets, donors, batches) is also scored.
    probabilities : obsm key of the class probabilities, for top-k accuracy ("auto":
        celltyper_probabilities when present; "none": skip).
    top_k : the k of those accuracies.
    label_map, label_dataset : TSV naming each truth label's CL id (columns label, cl_id).
    compare : what the flat metrics compare: "labels", "ontology" (CL terms) or "auto".
    ontology, use_ontology : the Cell Ontology (default: $CELLTYPER_ONTOLOGY, else the installed
        copy); use_ontology=False skips its metrics.
    report : write `celltyper evaluate --report`'s self-contained HTML report to this path
        (summary, per-class F1, confusion heatmap, ontology relations, the cell map).
    embedding, max_points, seed : the obsm matrix of the report's cell map ("auto": X_celltyper,
        else celltyper_probabilities, else X_pca, and a warning when it cannot be drawn; "none": no
        map), the cells it draws and the seed of their subsample; the dict's
        "embedding" entry describes it (its source, cells drawn, variance explained), as in
        `celltyper evaluate --json`.
    """
    _require_anndata(adata)
    import numbers

    if isinstance(top_k, numbers.Integral):  # (one k)
        top_k = [top_k]
    top_k = [_number(k, "top_k", integer=True, minimum=1) for k in top_k]
    truth_column, pred_column, group_column = _strip(truth, what="truth"), _strip(pred, what="pred"), _strip(group, what="group")
    columns = {}
    for role, column in (("truth labels", truth_column), ("predictions", pred_column), ("groups", group_column)):
        if column is None:
            continue
        if column not in adata.obs.columns:
            raise ValueError(f"AnnData: no obs column '{column}' for the {role} (available: {', '.join(map(str, adata.obs.columns))})")
        columns[column] = _column(adata.obs[column])
    for column in _with_term_ids(adata, [], truth_column):  # the truth's CL ids (CELLxGENE files)
        columns[column] = _column(adata.obs[column])
    if "celltyper_unlike_reference" in adata.obs.columns:  # (what the "types the reference lacks" warning reads, as the command)
        columns["celltyper_unlike_reference"] = _column(adata.obs["celltyper_unlike_reference"])
    obsm = {}
    uns = {}
    if probabilities != "none":
        key = "celltyper_probabilities" if probabilities == "auto" else _strip(probabilities, "obsm", what="probabilities")
        if key in adata.obsm:
            obsm[key] = np.asarray(adata.obsm[key], dtype=np.float32)
        elif probabilities != "auto":
            raise ValueError(f"AnnData: no obsm matrix '{key}' for the probabilities")
    if embedding is None:
        embedding = "none"
    if not isinstance(embedding, str):
        raise TypeError(f"embedding is an obsm key ('X_pca' or 'obsm:X_pca'), 'auto' or 'none', not {type(embedding).__name__}")
    map_key = embedding if embedding in ("auto", "none") else _strip(embedding, "obsm", what="embedding")
    if map_key not in ("auto", "none") and map_key not in adata.obsm:
        raise ValueError(f"AnnData: no obsm matrix '{map_key}' for the cell map (available: {', '.join(map(str, adata.obsm.keys())) or 'none'})")
    # (as `celltyper evaluate --embedding`: "auto" takes the first of these the AnnData has and,
    # when it cannot be drawn, says so in a warning; a named matrix that cannot be drawn is an error)
    for key in (("X_celltyper", "celltyper_probabilities", "X_pca") if map_key == "auto" else () if map_key == "none" else (map_key,)):
        if key in adata.obsm:
            if key not in obsm:
                matrix = adata.obsm[key]
                obsm[key] = np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=np.float32)
            break
    max_points = _number(max_points, "max_points", integer=True, minimum=2, maximum=1 << 24)
    seed = _number(seed, "seed", integer=True, minimum=0)
    if report is not None and not isinstance(report, (str, os.PathLike)):
        raise TypeError(f"report is a path (str or os.PathLike) of the HTML file to write, not {type(report).__name__}")
    for key in ("celltyper_probability_classes", "celltyper_probability_cl_ids"):
        value = adata.uns.get(key)
        if isinstance(value, str):
            value = json.loads(value)
        if value is not None:
            uns[key] = [str(v) for v in value]
    options = {"truth": truth_column, "pred": pred_column, "group": group_column or "", "probabilities": probabilities,
               "label_map": os.fspath(label_map) if label_map else "", "label_dataset": label_dataset or "", "compare": compare,
               "use_ontology": _flag(use_ontology, "use_ontology"), "ontology": os.fspath(ontology) if ontology else "",
               "top_k": [int(k) for k in top_k], "embedding": map_key, "max_points": max_points, "seed": seed,
               "report": os.fspath(report) if report is not None else ""}
    metrics = json.loads(_core.evaluate(columns, [str(n) for n in adata.obs_names], obsm, uns, options))
    for warning in metrics.get("warnings", []):  # (as `celltyper evaluate` prints them; also in the dict)
        _tell(evaluate.speak(warning) if hasattr(evaluate, "speak") else warning)
    return metrics


# ---- cross-validation -------------------------------------------------------------------------

@dataclass
class CrossValidationResult:
    """Outcome of `cv` (the metrics of `celltyper cv --json`, as pandas tables).

    folds : one row per held-out group and method: fold, method, n_train, n_test, n_genes (genes
        the fold's models could use; 0 = not restricted), accuracy, macro_f1, weighted_f1, with the
        Cell Ontology corrected_macro_f1, hierarchical_f, mean_lca_distance, the class probabilities'
        mean_confidence (mean top probability), expected_calibration_error (15 bins) and log_loss
        (flat methods, over the cells whose truth is one of the fold model's classes), and
        train_seconds, predict_seconds.
    mean : per method (index), the mean over the folds (every fold counts the same).
    pooled : per method (index), every held-out cell's prediction scored once (cell-weighted;
        the calibration columns pool each fold's probabilities over its model's classes).
    predictions : one row per held-out cell (index: its obs name; with several references the
        names may repeat: select by the reference column): reference (the AnnData it comes
        from, by name), fold, truth (its label as scored: the CL term's name under
        harmonize_labels), and one column per method with its out-of-fold prediction
        (categoricals).
    scores : the same cells x methods: the probability of each prediction (flat: its class's, as
        obs['celltyper_score']; "+hierarchical": its term's summed probability), for choosing a
        min_score on held-out cells.
    probabilities : per flat method (each configuration and "ensemble"; not "+hierarchical"), a
        DataFrame of cells (as predictions) x classes: each held-out cell's out-of-fold class
        probabilities (scikit-learn's cross_val_predict(method="predict_proba")), over the union
        of the folds' classes; a class a fold's model lacks is 0 there, and a cell without any
        model gene is 0 throughout (its prediction is Unassigned). For calibration, thresholds or
        your own metrics.
    per_class : one row per fold, method and label: precision, recall, f1, support (held-out
        cells of the label), predicted (cells predicted as it); fold "pooled" scores every
        held-out cell once.
    n_mapped (in folds and pooled, with the ontology): the cells whose truth and prediction both
        have CL ids, which the ontology metrics describe (labels without one: unmapped_labels).
    models : with return_models=True, each fold's trained model of each configuration, a dict
        {(fold, method): Model} (scikit-learn's cross_validate(return_estimator=True)); each is
        complete as `train` writes one (its reference sample, so `annotate` refits it for a
        query's genes; `.provenance["cv_fold"]` names its fold; `.save(path)`); the ensemble and
        "+hierarchical" rows are combinations of these. {} otherwise.
    table : the table `celltyper cv` prints. details : the whole JSON document (per-class metrics,
        confusion matrices, ontology relations per fold and pooled). warnings : what the run
        warned of (also issued as UserWarnings); notes : what it chose as you would have (logged
        at INFO on logging.getLogger("celltyper")).
    """
    folds: Any
    mean: Any
    pooled: Any
    predictions: Any
    scores: Any = None
    per_class: Any = None
    warnings: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    unmapped_labels: List[str] = field(default_factory=list)
    table: str = ""
    details: dict = field(default_factory=dict)
    probabilities: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return self.table + (f"({len(self.warnings)} warning(s): .warnings)\n" if self.warnings else "")


def _metric_row(metrics: dict) -> dict:
    """The headline numbers of one evaluation (to_json of EvaluationResult)."""
    row = {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro"]["f1"], "weighted_f1": metrics["weighted"]["f1"]}
    ontology = metrics.get("ontology")
    if ontology and ontology.get("n_mapped", 0) > 0:
        row.update({"corrected_macro_f1": ontology["corrected_macro_f1"], "hierarchical_f": ontology["hierarchical_f1"],
                    "mean_lca_distance": ontology["mean_lca_distance_all"], "n_mapped": ontology["n_mapped"]})
    calibration = (metrics.get("ranking") or {}).get("calibration")
    if calibration:
        row.update({"mean_confidence": calibration["mean_confidence"], "expected_calibration_error": calibration["expected_calibration_error"],
                    "log_loss": calibration["log_loss"]})
    return row


@_pythonic
def cv(adata, label: Union[str, Sequence[str]], group: Optional[str] = None, *, n_splits: int = 0, classifier: Union[str, Sequence[str]] = "logreg",
       features: Union[str, Sequence[str]] = "expression", ensemble: bool = True, hierarchical: bool = False, min_score: float = 0.5,
       folds: Optional[Sequence[str]] = None, harmonize_labels: bool = False, label_map=None, label_dataset: Optional[str] = None,
       ontology=None, use_ontology: bool = True, restrict_genes=None, n_genes: int = 3000, validation_fraction: float = 0.0,
       seed: int = 0, augment_depth: bool = True, calibrate: bool = True, layer: Optional[str] = None, use_raw: bool = False, dims: int = 0,
       threads: int = 0, verbose: bool = False, gene_table=None, genes=None, gene_column: Optional[str] = None, normalization: str = "auto",
       report=None, return_models: bool = False, own_gene_names: bool = False, **hyperparameters: float) -> CrossValidationResult:
    """Leave-one-group-out cross-validation of train + annotate configurations, as `celltyper cv`:
    each group of `group` (a donor, a batch, a technology; or "file": each AnnData of a list) is
    held out in turn, every configuration (classifier x feature route) trains on the other groups'
    labelled cells and predicts the held-out ones as `annotate` would (a fold whose held-out cells
    name under 95% of the model's genes trains on the genes they name, as annotate refits).

        res = celltyper.cv(adata, label="cell_type", group="donor_id")
        res.mean                                      # per method: accuracy, macro_f1, ...
        res = celltyper.cv({"pbmc3k": a, "savercat": b}, label="celltype", group="file",
                           harmonize_labels=True, label_map="label_map_to_cell_ontology.tsv")
        res.predictions                               # each held-out cell's out-of-fold labels

    Parameters (each as the `celltyper cv` flag of the same name)
    ----------
    adata : AnnData, a list of AnnData, or a dict {name: AnnData} (the names name the folds of
        group="file" and the references in messages; a list's are "reference 1", ...).
    label, group : obs columns of the cell types and of the groups held out ("file": each AnnData);
        label a list for references labelled in differently named columns (each reads the first
        it has).
    n_splits : K folds: more than K groups are pooled into K folds of about equal cells
        (scikit-learn's GroupKFold); with no group, the labelled cells are split into K folds
        stratified by label (StratifiedKFold, shuffled with `seed`). Folds are "fold 1"...
    classifier, features : one or several; every pair is a method ("logreg:expression"), with an
        "ensemble" (mean probabilities) when there are several (ensemble=False: none);
        hyperparameters as keywords (`l2=0.01`), with a single classifier.
    hierarchical, min_score : also score ontology-aware prediction of every method ("+hierarchical").
    folds : hold out only these groups (default: every group).
    harmonize_labels, label_map, label_dataset, ontology, use_ontology : labels as CL terms (files
        labelled at different depths pool, a coarse label trains as the classes below it); the
        Cell Ontology (default: $CELLTYPER_ONTOLOGY, else the installed copy) gives the
        corrected macro-F1, hierarchical F and LCA distance; use_ontology=False skips them.
    restrict_genes : "held-out" (per fold, the genes detected in its held-out cells) or a gene
        list / .h5ad file whose genes the models may use.
    n_genes, validation_fraction, seed, augment_depth, dims : as `train` (validation_fraction 0:
        no early-stopping split inside a fold; 20% of the fold's training cells still calibrate
        its scores unless calibrate=False).
    calibrate : calibrate each fold's scores as `train` does (default on; labels never change),
        so that `.scores` and the calibration figures say what `annotate` gives.
    layer, use_raw, normalization, gene_table, genes, gene_column, threads, verbose : as `train`.
    own_gene_names : the genes are the references' var names as written, as `train`'s (the
        expression route; genept configurations beside it are refused).
    report : write `celltyper cv --report`'s self-contained HTML report to this path.
    return_models : keep each fold's model of each configuration in `.models` (scikit-learn's
        return_estimator=True; `celltyper cv --save-models DIR` writes them).

    Returns a `CrossValidationResult` (`.folds`, `.mean`, `.pooled`, `.predictions`, `.table`).
    """
    import pandas as pd

    names, references = _named_references(adata)
    _require_anndata(adata)
    if isinstance(folds, str):  # (one fold)
        folds = [folds]
    if isinstance(restrict_genes, str) and restrict_genes != "held-out" and not os.path.exists(restrict_genes):
        raise ValueError(f"restrict_genes='{restrict_genes}': no such file; 'held-out' trains each fold on the genes its held-out "
                         "cells detect, a path names a gene list or .h5ad file")
    if not references:
        raise ValueError("cv needs at least one AnnData")
    classifiers = [classifier] if isinstance(classifier, str) else list(classifier)
    routes = [features] if isinstance(features, str) else list(features)
    if hyperparameters and len(set(classifiers)) > 1:
        raise ValueError(f"hyperparameters ({', '.join(hyperparameters)}) need a single classifier; cv compares {', '.join(classifiers)}: "
                         "run cv once per classifier")
    n_genes = _number(n_genes, "n_genes", integer=True, minimum=1)
    validation_fraction = _number(validation_fraction, "validation_fraction", minimum=0, maximum=0.99)
    min_score = _number(min_score, "min_score", minimum=0, maximum=1)
    seed = _number(seed, "seed", integer=True, minimum=0)
    dims = _number(dims, "dims", integer=True, minimum=0)
    threads = _number(threads, "threads", integer=True, minimum=0, maximum=1024)
    labels = _label_columns(label)
    group = _strip(group, what="group")
    n_splits = _number(n_splits, "n_splits", integer=True, minimum=0)
    if group is None and n_splits == 0:
        raise ValueError("cv needs group= (an obs column of donors, batches or samples, or 'file': each AnnData) or n_splits=K "
                         "(K folds of cells stratified by label)")
    by_file = group == "file"
    if by_file and len(references) < 2:
        raise ValueError("group='file' holds out each AnnData in turn: pass several (a list or a dict {name: AnnData})")
    others = [] if by_file or group is None else [group]
    specs = []
    for a, name in zip(references, names):
        own = _label_of(a, labels, name, len(references) > 1)
        specs.append(_dataset(a, layer=layer, use_raw=use_raw, obs_columns=_with_term_ids(a, [own] + others, own), name=name))
    options = _common({"label": ",".join(labels), "group": group or "", "n_splits": n_splits, "classifiers": classifiers, "routes": routes, "n_genes": n_genes,
                       "validation_fraction": validation_fraction, "seed": seed, "dims": dims,
                       "hyperparameters": _hyperparameters(hyperparameters, cv), "ensemble": ensemble,
                       "hierarchical": hierarchical, "min_score": min_score, "folds": [str(f) for f in folds] if folds else [],
                       "harmonize_labels": harmonize_labels, "label_map": os.fspath(label_map) if label_map else "",
                       "label_dataset": label_dataset or "", "ontology": os.fspath(ontology) if ontology else "",
                       "use_ontology": use_ontology, "augment_depth": augment_depth, "calibrate": calibrate, "names": names,
                       "own_gene_names": own_gene_names,
                       "restrict_genes": os.fspath(restrict_genes) if restrict_genes is not None else "",
                       "report": os.fspath(report) if report else "", "matrix": _matrix_request(layer, use_raw),
                       "return_models": _flag(return_models, "return_models")},
                      threads=threads, verbose=verbose, gene_table=gene_table, genes=genes, gene_column=gene_column,
                      normalization=normalization)
    text, matrices, fold_models = _core.cross_validate(specs, options)
    details = json.loads(text)
    rows = []
    for fold in details["folds"]:
        for method in details["methods"]:
            metrics = fold["methods"][method]
            rows.append({"fold": fold["group"], "method": method, "n_train": fold["n_train"], "n_test": fold["n_test"],
                         "n_genes": fold["n_genes"], **_metric_row(metrics), "train_seconds": metrics["train_seconds"],
                         "predict_seconds": metrics["predict_seconds"]})
    per_class_rows = [{"fold": fold["group"], "method": method, **row}
                      for fold in details["folds"] for method in details["methods"] for row in fold["methods"][method]["per_class"]]
    per_class_rows += [{"fold": "pooled", "method": method, **row} for method in details["methods"]
                       for row in details["pooled"][method]["per_class"]]
    per_class = pd.DataFrame(per_class_rows, columns=["fold", "method", "label", "precision", "recall", "f1", "support", "predicted"])
    fold_table = pd.DataFrame(rows)
    fold_table["fold"] = pd.Categorical(fold_table["fold"], categories=[fold["group"] for fold in details["folds"]])
    fold_table["method"] = pd.Categorical(fold_table["method"], categories=details["methods"])
    order = [c for c in ("accuracy", "macro_f1", "weighted_f1", "corrected_macro_f1", "hierarchical_f", "mean_lca_distance",
                         "train_seconds", "predict_seconds") if c in next(iter(details["mean"].values()), {})]
    mean = pd.DataFrame.from_dict(details["mean"], orient="index").reindex(index=details["methods"], columns=order)
    pooled = pd.DataFrame.from_dict({m: _metric_row(details["pooled"][m]) for m in details["methods"]}, orient="index")
    held = details.pop("held_out")
    obs_names = [specs[r]["obs_names"][row] for r, row in zip(held["reference"], held["row"])]
    index = pd.Index(obs_names, name="cell")
    predictions = pd.DataFrame({"reference": pd.Categorical([names[r] for r in held["reference"]], categories=names),
                                "fold": pd.Categorical(held["fold"], categories=[fold["group"] for fold in details["folds"]]),
                                "truth": pd.Categorical(held["truth"]),
                                **{method: pd.Categorical(held["predictions"][method]) for method in details["methods"]}},
                               index=index)
    scores = pd.DataFrame({method: np.asarray(held["scores"][method], dtype=np.float32) for method in details["methods"]}, index=index)
    probabilities = {method: pd.DataFrame(matrices[method][1], index=index, columns=pd.Index(matrices[method][0], name="class"))
                     for method in details["methods"] if method in matrices}
    table = details.pop("table")
    said, notes = [], []
    for message in details.get("warnings", []):  # (as `celltyper cv` prints them; in Python terms)
        message = cv.speak(message)
        if _tell(message):
            said.append(message)
        else:
            notes.append(message[len(_NOTE):])
    coverage = details.get("ontology_coverage")
    if details.get("unmapped_labels") and coverage:
        n_cells = coverage["n_cells"]
        covered = f"{coverage['fewest']}" if coverage["fewest"] == coverage["most"] else f"{coverage['fewest']}-{coverage['most']}"
        message = (f"labels without a Cell Ontology id: {', '.join(details['unmapped_labels'][:8])}"
                   f"{', ...' if len(details['unmapped_labels']) > 8 else ''}: corrected_macro_f1, hierarchical_f and mean_lca_distance "
                   f"describe {covered} of the {n_cells} held-out cells (n_mapped)"
                   f"{'; +hierarchical leaves the cells of classes without an id Unassigned' if hierarchical else ''}; "
                   "label_map=<TSV> names each label's CL id")
        _warn(message)
        said.append(message)
    if len(references) > 1 and not index.is_unique:
        message = ("obs names repeat across the references (10x barcodes of different samples?): .predictions, .scores and "
                   ".probabilities are indexed by obs name; select a reference's cells by .predictions['reference'] (the three "
                   "share its row order)")
        _warn(message)
        said.append(message)
    return CrossValidationResult(folds=fold_table, mean=mean, pooled=pooled, predictions=predictions, scores=scores, per_class=per_class,
                                 warnings=said,
                                 notes=notes, unmapped_labels=details.get("unmapped_labels", []), table=table, details=details,
                                 probabilities=probabilities, models={(fold, method): Model(core) for fold, method, core in fold_models})


class _Genes:
    """Gene-level helpers: `celltyper.genes.neighbors("CD3E", k=10)`."""

    @staticmethod
    def neighbors(gene: str, k: int = 10, *, genes=None, gene_table=None):
        """The k genes whose vectors are closest (cosine) to `gene`'s in the gene store, as a
        pandas DataFrame (symbol, entrez_id, similarity), best first."""
        import pandas as pd

        rows = _core.gene_neighbors(str(gene), int(k), os.fspath(genes) if genes else _default_store(),
                                    os.fspath(gene_table) if gene_table else "")
        return pd.DataFrame(rows, columns=["symbol", "entrez_id", "similarity"])


genes = _Genes()
