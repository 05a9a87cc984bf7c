"""LightGBM's text model, taken apart into arrays and put back together; the input matrix LightGBM builds from a
cleaned DataFrame. Used by quantization (a compact binary layout) and by compiled models (the same numeric input).
"""
from __future__ import annotations

import io
import zlib

import numpy as np
import pandas as pd

# per split node / per leaf arrays that prediction needs; the rest (gains, counts, weights) is training bookkeeping
NODE_KEYS = ("split_feature", "threshold", "decision_type", "left_child", "right_child")
LEAF_KEY = "leaf_value"
CAT_KEYS = ("cat_boundaries", "cat_threshold")


class ModelText:
    """A LightGBM model string as header, trees (dicts of arrays) and trailer."""

    def __init__(self, model_str: str):
        head, sep, rest = model_str.partition("\nTree=")
        if not sep:
            raise ValueError("not a LightGBM tree model (no 'Tree=' section)")
        body, sep, tail = ("Tree=" + rest).partition("end of trees")
        self.header = "\n".join(line for line in head.splitlines() if not line.startswith("tree_sizes="))
        self.trailer = "end of trees" + tail
        self.trees = [self._tree(block) for block in body.split("\n\n") if block.strip().startswith("Tree=")]

    @staticmethod
    def _tree(block: str) -> dict:
        kv = dict(line.split("=", 1) for line in block.strip().splitlines() if "=" in line)
        if kv.get("is_linear", "0") != "0":
            raise ValueError("linear trees cannot be compacted")
        tree = {"num_leaves": int(kv["num_leaves"]), "num_cat": int(kv.get("num_cat", 0)),
                LEAF_KEY: np.array(kv[LEAF_KEY].split(), dtype=np.float64)}
        if tree["num_leaves"] > 1:
            for key in NODE_KEYS:
                tree[key] = np.array(kv[key].split(), dtype=np.float64 if key == "threshold" else np.int64)
        if tree["num_cat"] > 0:
            for key in CAT_KEYS:
                tree[key] = np.array(kv[key].split(), dtype=np.int64)
        return tree

    def to_string(self) -> str:
        out = [self.header.rstrip("\n"), ""]
        for i, t in enumerate(self.trees):
            lines = [f"Tree={i}", f"num_leaves={t['num_leaves']}", f"num_cat={t['num_cat']}"]
            if t["num_leaves"] > 1:
                lines += [f"split_feature={_ints(t['split_feature'])}",
                          f"threshold={' '.join(repr(float(x)) for x in t['threshold'])}",
                          f"decision_type={_ints(t['decision_type'])}",
                          f"left_child={_ints(t['left_child'])}", f"right_child={_ints(t['right_child'])}"]
            lines.append(f"leaf_value={' '.join(repr(float(x)) for x in t[LEAF_KEY])}")
            if t["num_cat"] > 0:
                lines += [f"{k}={_ints(t[k])}" for k in CAT_KEYS]
            lines += ["is_linear=0", "shrinkage=1", "", ""]
            out += lines
        return "\n".join(out) + "\n" + self.trailer


def _ints(a) -> str:
    return " ".join(str(int(x)) for x in a)


def pack(text: ModelText, leaf_values: str = "float16") -> bytes:
    """The trees in a compact binary layout (numpy .npz, no pickle): thresholds as indices into a table of the
    distinct thresholds (exact), children and features as small integers, leaf values at ``leaf_values`` precision
    (float64, float16, or int8 with one scale per model)."""
    trees = text.trees
    sizes = np.array([[t["num_leaves"], t["num_cat"], len(t.get("cat_threshold", ()))] for t in trees], dtype=np.int32)
    cat = lambda key: np.concatenate([t.get(key, np.zeros(0, np.int64)) for t in trees])  # noqa: E731
    node = {k: np.concatenate([t.get(k, np.zeros(0)) for t in trees]) for k in NODE_KEYS}
    table, index = np.unique(node["threshold"], return_inverse=True)
    leaves = np.concatenate([t[LEAF_KEY] for t in trees])
    arrays = {
        "sizes": sizes, "split_feature": _small(node["split_feature"]), "decision_type": node["decision_type"].astype(np.int8),
        "left_child": _small(node["left_child"]), "right_child": _small(node["right_child"]),
        "threshold_table": table, "threshold_index": _small(index),
        "cat_boundaries": _small(cat("cat_boundaries")), "cat_threshold": cat("cat_threshold").astype(np.uint32),
        "text": np.frombuffer(zlib.compress((text.header + "\n\x00\n" + text.trailer).encode(), 9), dtype=np.uint8),
    }
    if leaf_values == "float64":
        arrays["leaves"] = leaves
    elif leaf_values == "float16":
        arrays["leaves"] = leaves.astype(np.float16)
    elif leaf_values == "int8":
        scale = float(np.abs(leaves).max() / 127) or 1.0
        arrays["leaves"] = np.round(leaves / scale).astype(np.int8)
        arrays["scale"] = np.array([scale])
    else:
        raise ValueError(f"unknown leaf precision '{leaf_values}'; use float64, float16 or int8")
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def unpack(data: bytes) -> ModelText:
    """The model that ``pack`` wrote (leaf values as stored, widened back to float64)."""
    z = np.load(io.BytesIO(data), allow_pickle=False)
    header, _, trailer = zlib.decompress(z["text"].tobytes()).decode().partition("\n\x00\n")
    leaves = z["leaves"].astype(np.float64) * (float(z["scale"][0]) if "scale" in z.files else 1.0)
    thresholds = z["threshold_table"][z["threshold_index"]]
    text = ModelText.__new__(ModelText)
    text.header, text.trailer, text.trees = header, trailer, []
    n_pos = leaf_pos = cat_b = cat_t = 0
    for n_leaves, n_cat, n_cat_words in z["sizes"].tolist():
        n_nodes = n_leaves - 1
        tree = {"num_leaves": n_leaves, "num_cat": n_cat, LEAF_KEY: leaves[leaf_pos:leaf_pos + n_leaves]}
        leaf_pos += n_leaves
        if n_nodes > 0:
            sl = slice(n_pos, n_pos + n_nodes)
            tree |= {"split_feature": z["split_feature"][sl], "threshold": thresholds[sl],
                     "decision_type": z["decision_type"][sl], "left_child": z["left_child"][sl],
                     "right_child": z["right_child"][sl]}
            n_pos += n_nodes
        if n_cat > 0:
            tree["cat_boundaries"] = z["cat_boundaries"][cat_b:cat_b + n_cat + 1]
            tree["cat_threshold"] = z["cat_threshold"][cat_t:cat_t + n_cat_words]
            cat_b, cat_t = cat_b + n_cat + 1, cat_t + n_cat_words
        text.trees.append(tree)
    return text


def _small(a: np.ndarray) -> np.ndarray:
    """The narrowest signed integer type that holds ``a``."""
    a = np.asarray(a, dtype=np.int64)
    for t in (np.int8, np.int16, np.int32):
        if a.size == 0 or (a.min() >= np.iinfo(t).min and a.max() <= np.iinfo(t).max):
            return a.astype(t)
    return a


def lgb_matrix(booster, X: pd.DataFrame) -> np.ndarray:
    """The float matrix LightGBM itself builds from a cleaned DataFrame: categories as the codes of the categories
    stored with the model (unknown → NaN), everything else as float64."""
    stored = iter(booster.pandas_categorical or [])
    cols = []
    for c in X.columns:
        s = X[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            levels = next(stored)
            same = len(s.cat.categories) == len(levels) and s.cat.categories.tolist() == levels
            codes = np.asarray(s.cat.codes if same else pd.Categorical(s, categories=levels).codes, dtype=np.float64)
            codes[codes < 0] = np.nan
            cols.append(codes)
        else:
            cols.append(s.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.ascontiguousarray(np.column_stack(cols)) if cols else np.zeros((len(X), 0))
