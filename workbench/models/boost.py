"""CatBoost and XGBoost as zoo families: estimators on the cleaned table, and their model kinds.

Both read the encoded matrix (``RowEncoder``'s layout: numbers as floats, a category column as its codes) and are
fitted on it, so training, the pandas path and the service give the same numbers. CatBoost takes the category
columns natively (its ordered target statistics over the codes); XGBoost splits them as categories
(``enable_categorical`` with the columns' feature types). Each is written in its library's own safe format
(CatBoost's ``.cbm``, XGBoost's UBJSON), scored on the matrix with no pandas — their trees walked in numpy by the
forest walker of ``workbench.models.scorers`` (XGBoost always, within about 1e-7 of its own predictor; CatBoost when
every split is on a number, exactly), else by CatBoost's own predictor — and explained by the library's exact
TreeSHAP on the raw margin.

Examples
--------
>>> from workbench.data import load, clean
>>> from workbench.models.compare import encode_target
>>> c = clean(load("demo", n_rows=300), "churn")
>>> y, _ = encode_target(c.y, "binary")
>>> est = XGBoostClassifier({"n_estimators": 20}).fit(c.X, y)
>>> est.predict_proba(c.X.head(2)).shape
(2, 2)
"""
from __future__ import annotations

import copy
import importlib
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from workbench import kinds
from workbench.data.encode import matrix_of
from workbench.errors import WorkbenchError
from workbench.extras import extra
from workbench.models.contrib import Explainer, Layout, _margin_scale
from workbench.models.scorers import _Forest, _Tree

try:
    import catboost
    import xgboost
except ModuleNotFoundError:  # the `boost` extra is not installed: the kinds still register, using one says what to install
    catboost = xgboost = None

BATCH_THREADS_FROM = 1000  # fewer rows are scored on one thread: starting threads costs more than it saves


def require() -> None:
    """Raise MissingExtra, one line naming the `boost` extra, when CatBoost or XGBoost is not installed."""
    if catboost is None or xgboost is None:
        with extra("boost"):
            for module in ("catboost", "xgboost"):
                importlib.import_module(module)


class _Boosted(BaseEstimator):
    """A boosted-trees model fitted on the encoded matrix of a cleaned table.

    Parameters
    ----------
    params : the library's parameters (``n_estimators`` is the number of trees for both).
    n_jobs : threads for fitting (and for scoring many rows).
    random_state : the seed.

    Attributes
    ----------
    columns_ : [(name, category levels or None)], the matrix the model reads.
    classes_ : the classes it saw (classifiers).
    booster_ : the library's fitted model.
    best_iteration_ : how many trees it kept (early stopping on ``eval_set`` keeps the best).
    """

    def __init__(self, params: dict | None = None, n_jobs: int = 1, random_state: int = 0):
        self.params = params
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y, eval_set=None, early_stopping_rounds: int | None = None):
        """Fit on a cleaned table (or its encoded matrix); with ``eval_set`` ([(X, y)]) and ``early_stopping_rounds``,
        stop adding trees where the held-out rows stop improving and keep the best number."""
        require()
        M, self.columns_ = _matrix(X)
        y = np.asarray(y)
        if isinstance(self, ClassifierMixin):
            self.classes_ = np.unique(y)
            y = np.searchsorted(self.classes_, y)
        valid = None
        if eval_set and early_stopping_rounds:
            Xv, yv = eval_set[0]
            yv = np.asarray(yv)
            valid = (self._encoded(Xv), np.searchsorted(self.classes_, yv) if hasattr(self, "classes_") else yv)
        self._train(M, y, valid, early_stopping_rounds if valid is not None else None)
        self.n_features_in_ = M.shape[1]
        return self

    def _encoded(self, X) -> np.ndarray:
        """The matrix of a table (its categories recoded to the training levels; an unknown one: missing) or a matrix
        itself."""
        if not isinstance(X, pd.DataFrame):
            return np.asarray(X, dtype=np.float64)
        return np.column_stack([
            _codes(X[name], levels) if levels is not None else X[name].to_numpy(dtype=np.float64, na_value=np.nan)
            for name, levels in self.columns_])

    def _threads(self, n_rows: int) -> int:
        return 1 if n_rows < BATCH_THREADS_FROM else max(1, self.n_jobs)

    def _task(self) -> str:
        if not hasattr(self, "classes_"):
            return "regression"
        return "binary" if len(self.classes_) == 2 else "multiclass"

    def _scores(self, M: np.ndarray) -> np.ndarray:
        """Probabilities (classes seen) or values, from the margin in float64: the one formula the scorer uses too."""
        margin = self._margin(M)
        task = self._task()
        if task == "regression":
            return margin.reshape(-1)
        if task == "binary":
            p = expit(margin.reshape(-1))
            return np.column_stack([1.0 - p, p])
        return softmax(margin, axis=1)

    def predict(self, X) -> np.ndarray:
        scores = self._scores(self._encoded(X))
        return scores if self._task() == "regression" else self.classes_[scores.argmax(axis=1)]

    def _walker_of(self, make):
        """The numpy walker of the current booster, made once (None: the library's own predictor scores it)."""
        if getattr(self, "_walked", None) is not self.booster_:
            self._walker, self._walked = make(self.booster_), self.booster_
        return self._walker

    def first(self, trees: int) -> "_Boosted":
        """A copy that keeps only the first ``trees`` boosting iterations (compression's pruning)."""
        out = copy.copy(self)
        out.booster_ = self._first(trees)  # its own walker is made on first use
        out.best_iteration_ = min(trees, self.best_iteration_)
        return out


class _CatBoost(_Boosted):
    def _train(self, M, y, valid, rounds) -> None:
        cats = self._cats()
        params = {"n_estimators": 300, "learning_rate": 0.1, **(self.params or {})}
        params = {"iterations": params.pop("n_estimators"), "thread_count": max(1, self.n_jobs),
                  "random_seed": self.random_state, "verbose": 0, "allow_writing_files": False, **params}
        if isinstance(self, ClassifierMixin):
            params["loss_function"] = params.get("loss_function", "Logloss" if len(self.classes_) == 2 else "MultiClass")
            model = catboost.CatBoostClassifier(cat_features=cats, **params)
        else:
            model = catboost.CatBoostRegressor(cat_features=cats, **params)
        if valid is None:
            model.fit(_objects(M, cats), y)
        else:
            model.fit(_objects(M, cats), y, eval_set=(_objects(valid[0], cats), valid[1]), early_stopping_rounds=rounds)
        self.booster_ = model
        self.best_iteration_ = int(model.tree_count_)

    def _first(self, trees: int):
        booster = self.booster_.copy()
        booster.shrink(ntree_end=trees)
        return booster

    def _cats(self) -> list[int]:
        return [j for j, (_, levels) in enumerate(self.columns_) if levels is not None]

    def _margin(self, M: np.ndarray) -> np.ndarray:
        walker = self._walker_of(_CatBoostMargin.of)
        if walker is not None:
            return walker(M)
        raw = self.booster_.predict(_objects(M, self._cats()), prediction_type="RawFormulaVal",
                                    thread_count=self._threads(len(M)))
        return np.asarray(raw, dtype=np.float64)

    def _contributions(self, M: np.ndarray) -> np.ndarray:
        """n × (features + 1) × outputs on the raw margin, the bias last (CatBoost's ShapValues)."""
        pool = catboost.Pool(_objects(M, self._cats()), cat_features=self._cats())
        phi = np.asarray(self.booster_.get_feature_importance(pool, type="ShapValues",
                                                             thread_count=self._threads(len(M))), dtype=np.float64)
        return phi[:, :, None] if phi.ndim == 2 else phi.transpose(0, 2, 1)


class CatBoostClassifier(ClassifierMixin, _CatBoost):
    """CatBoost on the cleaned table's classes (see ``_Boosted``); its category columns as CatBoost's own."""

    def predict_proba(self, X) -> np.ndarray:
        return self._scores(self._encoded(X))


class CatBoostRegressor(RegressorMixin, _CatBoost):
    """CatBoost on the cleaned table's numbers (see ``_Boosted``); its category columns as CatBoost's own."""


class _XGBoost(_Boosted):
    def _train(self, M, y, valid, rounds) -> None:
        types = ["c" if levels is not None else "q" for _, levels in self.columns_]
        params = {"n_estimators": 200, "learning_rate": 0.1, "max_depth": 6, "tree_method": "hist",
                  "max_cat_to_onehot": 8, **(self.params or {}), "n_jobs": max(1, self.n_jobs),
                  "random_state": self.random_state, "enable_categorical": True, "feature_types": types,
                  "early_stopping_rounds": rounds}
        cls = xgboost.XGBClassifier if isinstance(self, ClassifierMixin) else xgboost.XGBRegressor
        model = cls(**params)
        model.fit(M, y, **({"eval_set": [valid], "verbose": False} if valid is not None else {}))
        booster = model.get_booster()
        if valid is not None:  # only the best trees are kept: the stored model is what predicts
            booster = booster[: model.best_iteration + 1]
        self.booster_ = booster
        self.best_iteration_ = int(booster.num_boosted_rounds())

    def _first(self, trees: int):
        return self.booster_[:trees]

    def _margin(self, M: np.ndarray) -> np.ndarray:
        return self._walker_of(lambda booster: _XGBoostMargin(booster, self.columns_))(M)

    def _contributions(self, M: np.ndarray) -> np.ndarray:
        """n × (features + 1) × outputs on the raw margin, the bias last (XGBoost's TreeSHAP). XGBoost sums in
        float32: the rounding (~1e-6) goes into the bias, so bias + sum is the margin the scorer reads."""
        self.booster_.set_param({"nthread": max(1, self.n_jobs)})
        data = xgboost.DMatrix(M, feature_types=self.booster_.feature_types, enable_categorical=True)
        phi = np.asarray(self.booster_.predict(data, pred_contribs=True), dtype=np.float64)
        phi = phi[:, :, None] if phi.ndim == 2 else phi.transpose(0, 2, 1)
        margin = self._margin(M).reshape(len(M), -1)
        phi[:, -1, :] += margin - phi.sum(axis=1)
        return phi


class XGBoostClassifier(ClassifierMixin, _XGBoost):
    """XGBoost on the cleaned table's classes (see ``_Boosted``); its category columns split as categories."""

    def predict_proba(self, X) -> np.ndarray:
        return self._scores(self._encoded(X))


class XGBoostRegressor(RegressorMixin, _XGBoost):
    """XGBoost on the cleaned table's numbers (see ``_Boosted``); its category columns split as categories."""


class _XGBoostMargin:
    """XGBoost's trees walked by the workbench's tree walker (``scorers._Forest``): XGBoost's own predictor costs
    ~70 µs a call whatever the rows, this ~10-30 µs a row. Same splits (XGBoost goes left when ``x < condition`` in
    float32, a category of the split's set goes right, a missing value its default way), the leaves summed in
    float64 from the base margin XGBoost adds (so ~1e-7 from XGBoost's float32 sums)."""

    def __init__(self, booster, columns: list):
        model = json.loads(bytes(booster.save_raw("json")))["learner"]["gradient_booster"]["model"]
        self.outputs = outputs = max(model["tree_info"], default=0) + 1
        width = max([len(levels) for _, levels in columns if levels is not None], default=0)
        trees, sets = [], []
        for tree, output in zip(model["trees"], model["tree_info"]):
            trees.append(_xgboost_tree(tree, output, outputs, sets, width))
        self.forest = _Forest(trees, category_right=np.array(sets, dtype=bool).reshape(len(sets), width + 1)
                              if sets else None)
        self.chunk = max(1, 200_000 // max(1, len(trees)))  # rows walked at once: trees × rows nodes in memory
        zero = np.zeros((1, len(columns)))
        own = np.asarray(booster.inplace_predict(zero, predict_type="margin"), dtype=np.float64).reshape(1, -1)
        self.base = own[0] - self._sums(zero)[0]

    def _sums(self, M: np.ndarray) -> np.ndarray:
        if not len(M):
            return np.zeros((0, self.outputs))
        return np.concatenate([self.forest(M[i:i + self.chunk])[:, 0, :] for i in range(0, len(M), self.chunk)])

    def __call__(self, M: np.ndarray) -> np.ndarray:
        out = self._sums(np.asarray(M, dtype=np.float64)) + self.base
        return out[:, 0] if out.shape[1] == 1 else out


class _CatBoostMargin:
    """CatBoost's oblivious trees on number columns walked in numpy: its predictor costs ~50-100 µs a call whatever
    the rows (building its Pool), this ~10-20 µs a row. Each tree's leaf is the bits of its splits (bit i: the i-th
    split's ``x > border`` in float32, a missing value as its column's nan treatment says); the leaves summed in
    float64, then CatBoost's scale and bias. A model with category splits (target statistics, one-hot hashes) is
    scored by CatBoost itself (``of`` gives None)."""

    def __init__(self, trees: list, features: dict, scale_and_bias):
        depth = max(1, max(len(t["splits"]) for t in trees))
        k = len(trees[0]["leaf_values"]) // max(1, 2 ** len(trees[0]["splits"]))
        self.feature = np.zeros((len(trees), depth), dtype=np.intp)
        self.border = np.full((len(trees), depth), np.inf)  # a padded split never sends a row right
        self.nan_right = np.zeros((len(trees), depth), dtype=bool)
        self.leaves = np.zeros((len(trees), 2 ** depth, k))
        for i, tree in enumerate(trees):
            for d, split in enumerate(tree["splits"]):
                flat, treatment = features[split["float_feature_index"]]
                self.feature[i, d], self.border[i, d] = flat, np.float32(split["border"])
                self.nan_right[i, d] = treatment == "AsTrue"
            values = np.asarray(tree["leaf_values"], dtype=np.float64).reshape(-1, k)
            self.leaves[i, :len(values)] = values
        self.bits = 1 << np.arange(depth)
        self.scale, bias = scale_and_bias
        self.bias = np.asarray(bias, dtype=np.float64).reshape(-1)
        self.chunk = max(1, 2_000_000 // self.feature.size)

    @classmethod
    def of(cls, booster) -> "_CatBoostMargin | None":
        """The walker of ``booster``, or None when it has splits other than number thresholds."""
        model = json.loads(_catboost_json(booster))
        trees = model.get("oblivious_trees")
        if not trees or "trees" in model or any(s.get("split_type") != "FloatFeature" for t in trees for s in t["splits"]):
            return None
        features = {f["feature_index"]: (f["flat_feature_index"], f.get("nan_value_treatment", "AsFalse"))
                    for f in model["features_info"].get("float_features", [])}
        return cls(trees, features, model.get("scale_and_bias", [1.0, [0.0]]))

    def __call__(self, M: np.ndarray) -> np.ndarray:
        M = np.asarray(M, dtype=np.float32).astype(np.float64)
        out = np.empty((len(M), self.leaves.shape[2]))
        trees = np.arange(len(self.feature))
        for i in range(0, len(M), self.chunk):
            x = M[i:i + self.chunk][:, self.feature]  # rows × trees × depth
            right = (x > self.border) | (np.isnan(x) & self.nan_right)
            leaf = right @ self.bits  # rows × trees
            out[i:i + self.chunk] = self.leaves[trees, leaf].sum(axis=1)
        out = self.scale * out + self.bias
        return out[:, 0] if out.shape[1] == 1 else out


def _catboost_json(booster) -> bytes:
    with tempfile.TemporaryDirectory(prefix="workbench-catboost-") as tmp:
        path = Path(tmp) / "model.json"
        booster.save_model(str(path), format="json")
        return path.read_bytes()


def _xgboost_tree(tree: dict, output: int, outputs: int, sets: list, width: int) -> _Tree:
    """One tree of XGBoost's JSON model as node arrays; each categorical split appends its row to ``sets``: per
    category code, does it go right (in the split's set), and last, where a missing value goes."""
    left = np.asarray(tree["left_children"], dtype=np.intp)
    right = np.asarray(tree["right_children"], dtype=np.intp)
    leaf = left < 0
    condition = np.asarray(tree["split_conditions"], dtype=np.float32)
    default_left = np.asarray(tree["default_left"], dtype=bool)
    value = np.zeros((len(left), outputs))
    value[leaf, output] = condition[leaf]
    threshold = np.nextafter(condition, np.float32(-np.inf)).astype(np.float64)  # x > it  ⇔  not x < condition
    categorical = np.full(len(left), -1, dtype=np.intp)
    segments, sizes, cats = tree["categories_segments"], tree["categories_sizes"], tree["categories"]
    for node, start, size in zip(tree["categories_nodes"], segments, sizes):
        row = np.zeros(width + 1, dtype=bool)
        members = [c for c in cats[start:start + size] if c < width]
        row[members] = True
        row[width] = not default_left[node]
        categorical[node] = len(sets)
        sets.append(row)
    depth, stack = np.zeros(len(left), dtype=np.intp), [0]
    while stack:
        node = stack.pop()
        if not leaf[node]:
            depth[left[node]] = depth[right[node]] = depth[node] + 1
            stack += [left[node], right[node]]
    return _Tree(np.where(leaf, 0, np.asarray(tree["split_indices"], dtype=np.intp)), threshold, np.where(leaf, -1, left),
                 right, default_left, value, int(depth.max()), categorical)


def _matrix(X) -> tuple[np.ndarray, list]:
    if isinstance(X, pd.DataFrame):
        return matrix_of(X)
    M = np.asarray(X, dtype=np.float64)
    return M, [(f"x{j}", None) for j in range(M.shape[1])]


def _codes(values: pd.Series, levels: list) -> np.ndarray:
    codes = pd.Categorical(values, categories=levels).codes.astype(np.float64)
    codes[codes < 0] = np.nan
    return codes


def _objects(M: np.ndarray, cats: list[int]) -> np.ndarray:
    """The matrix as CatBoost reads it: numbers as floats, category codes as integers (a missing code: -1)."""
    if not cats:
        return np.ascontiguousarray(M, dtype=np.float32)
    out = M.astype(object)
    codes = M[:, cats]
    out[:, cats] = np.where(np.isnan(codes), -1, codes).astype(np.int64)
    return out


# ---- the kinds: written in each library's own format, scored and explained on the encoded matrix -------------------

def scorer(est: _Boosted, columns: kinds.Columns, task: str, n_classes: int) -> kinds.Scorer:
    """The margin on the matrix (the trees walked in numpy where the module's docstring says, else the library's
    predictor), turned into probabilities (or values) in float64; a class the training rows lacked gets 0."""
    names = [name for name, _ in columns]
    if names != [name for name, _ in est.columns_]:
        raise WorkbenchError(f"the {type(est).__name__} reads the columns {[n for n, _ in est.columns_]}, "
                             f"the matrix has {names}")
    if task == "regression" or len(est.classes_) == n_classes:
        return est._scores
    seen = np.asarray(est.classes_, dtype=np.intp)

    def widened(M):
        out = np.zeros((len(M), n_classes))
        out[:, seen] = est._scores(M)
        return out
    return widened


def contributions(est: _Boosted, layout: Layout, task: str, n_classes: int) -> Explainer | None:
    """The library's exact TreeSHAP, summed into raw columns: log-odds (binary), per-class margins (multiclass) or
    values. A classifier that saw fewer classes than the task has no margin for the others: None."""
    if task != "regression" and len(est.classes_) != n_classes:
        return None
    fold = np.vstack([layout.folding(np.arange(est.n_features_in_)), np.zeros((1, len(layout.groups)))])
    fold = np.hstack([fold, np.eye(est.n_features_in_ + 1)[:, -1:]])

    def explain(X):
        return np.einsum("nfo,fg->ngo", est._contributions(X), fold)
    library = "CatBoost's ShapValues" if isinstance(est, _CatBoost) else "XGBoost's pred_contribs"
    return Explainer(explain, _margin_scale(task), f"TreeSHAP ({library}, path-dependent)")


def _spec(est: _Boosted, file: str) -> dict:
    return {"file": file, "columns": [[name, levels] for name, levels in est.columns_],
            "classes": est.classes_.tolist() if hasattr(est, "classes_") else None}


def _restored(cls, spec: dict, booster) -> _Boosted:
    est = cls()
    est.columns_ = [(name, levels) for name, levels in spec["columns"]]
    if spec.get("classes") is not None:
        est.classes_ = np.asarray(spec["classes"])
    est.booster_, est.n_features_in_ = booster, len(est.columns_)
    est.best_iteration_ = int(booster.tree_count_ if isinstance(booster, catboost.CatBoost)
                              else booster.num_boosted_rounds())
    return est


def _write_catboost(est: _CatBoost, folder: Path, stem: str, task: str) -> dict:
    file = f"{stem}.cbm"
    est.booster_.save_model(str(folder / file), format="cbm")
    return _spec(est, file)


def _read_catboost(spec: dict, folder: Path, task: str) -> _CatBoost:
    require()
    booster = catboost.CatBoost().load_model(str(folder / spec["file"]), format="cbm")
    return _restored(CatBoostRegressor if task == "regression" else CatBoostClassifier, spec, booster)


def _write_xgboost(est: _XGBoost, folder: Path, stem: str, task: str) -> dict:
    file = f"{stem}.ubj"
    est.booster_.save_model(str(folder / file))
    return _spec(est, file)


def _read_xgboost(spec: dict, folder: Path, task: str) -> _XGBoost:
    require()
    booster = xgboost.Booster()
    booster.load_model(str(folder / spec["file"]))
    return _restored(XGBoostRegressor if task == "regression" else XGBoostClassifier, spec, booster)


kinds.register(kinds.Kind("catboost", (CatBoostClassifier, CatBoostRegressor), _write_catboost, _read_catboost, scorer,
                          extra="boost", contributions=contributions))
kinds.register(kinds.Kind("xgboost", (XGBoostClassifier, XGBoostRegressor), _write_xgboost, _read_xgboost, scorer,
                          extra="boost", contributions=contributions))
