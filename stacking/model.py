"""LightGBM per dimension with out-of-fold stacking.

Level 1: one LGBMRegressor per dimension on pooled expert embeddings + scalars + hand-crafted
features (Optuna-tuned with speaker-grouped CV when n_trials > 0). Out-of-fold predictions of every
dimension (GroupKFold by speaker, so no speaker is both fitted and predicted) are the
meta-features. Level 2 (`meta_learner: ridge`): per dimension a ridge regression on the OOF
predictions of all the dimensions, which lets e.g. `overall` borrow from the others.

`feature_groups` narrows a dimension's trees to named column groups (lip_sync: the sync expert and the
lip-sync family, ...), to ask whether a dimension gains from seeing only its own evidence. On the default
model's corpus it did not (out of fold, lip_sync, expression and consistency lost; README, version 10),
so the default leaves every column to every dimension. `drop_columns` keeps single columns out of a
dimension's trees (a reading about the face above the mouth out of visual_quality's); since each dimension is
tuned and fitted alone, that dimension gets exactly the trees of a model that never had the column.

Two ways to keep an expert's evidence intact on the way to the score: `monotone` constrains level 1 to
move with a reading in the direction it is known to mean (a higher sync confidence never lowers
lip_sync), and `calibration: isotonic` maps the level-2 prediction through a strictly increasing curve
fitted on the out-of-fold predictions (stacking/calibration.py), which undoes the trees' pull toward
the mean at both ends of the scale.

`bag: K` fits each dimension K times with seeds seed ... seed + K - 1 (tuning included) and predicts their
mean, held as one booster of all their trees (trees.py `mean_of_models`); `bag_of` makes the same model
from single-seed models trained apart.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from talkqa.config import load_config, save_config, stable_hash
from talkqa.errors import TalkqaError
from talkqa.labels import Labels
from talkqa.splits import group_folds, name_folds
from talkqa.store import atomic_write_json, atomic_write_text, write_parquet
from talkqa.store_data import StoreData
from talkqa.tasks import DIMENSION_NAMES, DIMENSIONS

from .calibration import MonotoneMap
from .ceilings import Ceiling, lowest_caps
from .config import StackingConfig
from .features import PooledFeaturizer, column_group
from .trees import Linear, LoadedTrees, Projection, mean_of_models

_DIM = {d.name: d for d in DIMENSIONS}
_CAP = "cap__"  # out-of-fold evidence ceilings beside the out-of-fold predictions (oof.parquet)


def _store_readings(data: StoreData, clip_ids: list[str], columns: list[str]) -> pd.DataFrame:
    """These columns for these clips from the store's hand-crafted features or expert scalars as they are (NaN
    where the store lacks one): the readings a ceiling may name without any tree reading them."""
    out = pd.DataFrame(np.nan, index=pd.Index(clip_ids, name="clip_id"), columns=columns)
    for table in (data.handcrafted, data.scalars):
        have = [col for col in columns if col in table.columns]
        if have and clip_ids:
            out[have] = table.reindex(clip_ids)[have].to_numpy(np.float64)
    return out


def _refuse_overlap(clip_ids: list[str], ceiling_only: list[str]) -> None:
    if overlap := set(clip_ids) & set(ceiling_only):
        raise ValueError(f"{len(overlap)} clips are both trained on and ceiling-only, e.g. {sorted(overlap)[0]}")


def _ridge_cv(**kwargs):
    from sklearn.linear_model import RidgeCV  # lazy: slow import, only when fitting

    return RidgeCV(**kwargs)


def _text(model) -> str:
    """LightGBM's model text of a dimension's trees: fitted here (LGBMRegressor) or loaded / merged."""
    return model.text if isinstance(model, LoadedTrees) else model.booster_.model_to_string()


class StackingRegressor:
    def __init__(self, config: StackingConfig | None = None):
        self.config = config or StackingConfig()
        self._oof, self._oof_file = None, None
        self.monotone_: dict[str, dict[str, int]] = {}
        self.columns_of_: dict[str, list[str]] = {}  # only the dimensions narrowed by feature_groups / drop_columns
        self.calibration_: dict[str, MonotoneMap] = {}
        self.ceilings_: dict[str, list[Ceiling]] = {}

    @property
    def oof_(self) -> pd.DataFrame | None:
        """Out-of-fold level-1 predictions of the training clips (None when not saved)."""
        if self._oof is None and self._oof_file is not None and self._oof_file.is_file():
            self._oof = pd.read_parquet(self._oof_file).set_index("clip_id")
        return self._oof

    @oof_.setter
    def oof_(self, value: pd.DataFrame | None) -> None:
        self._oof, self._oof_file = value, None

    def _lgbm(self, params: dict, dim: str | None = None, seed: int | None = None):
        """A LightGBM regressor with `params` over the configured ones; `seed` (a bag member's) or the config's."""
        from lightgbm import LGBMRegressor  # lazy: slow import, only when fitting

        c = self.config
        constraints = {}
        if dim is not None and self.monotone_.get(dim):
            signs = self.monotone_[dim]
            constraints = {"monotone_constraints": [signs.get(col, 0) for col in self.columns_of(dim)],
                           "monotone_constraints_method": "advanced"}
        return LGBMRegressor(**{**c.params, **params, **constraints, "random_state": c.seed if seed is None else seed,
                                "n_jobs": c.n_jobs, "verbose": -1})

    def _monotone(self) -> dict[str, dict[str, int]]:
        """The configured constraints on the columns this model has (a dropped expert's are skipped)."""
        have = set(self.featurizer_.columns_)
        return {dim: {col: int(sign) for col, sign in signs.items() if col in have}
                for dim, signs in self.config.monotone.items()}

    def _columns_by_dimension(self, dimensions: list[str]) -> dict[str, list[str]]:
        """For each dimension named in feature_groups or drop_columns, the featurizer's columns in its groups
        less its dropped columns (in the featurizer's order, so a dimension that drops a column the others have
        is fitted exactly as a model without that column would fit it)."""
        columns = self.featurizer_.columns_
        out = {}
        for dim in dimensions:
            groups = self.config.feature_groups.get(dim)
            wanted = None if groups is None else set(groups)
            dropped = set(self.config.drop_columns.get(dim, ())) & set(columns)
            if wanted is None and not dropped:
                continue
            out[dim] = [c for c in columns if (wanted is None or column_group(c) in wanted) and c not in dropped]
            if not out[dim]:
                have = sorted({column_group(c) for c in columns})
                if wanted is not None and not wanted & set(have):
                    raise TalkqaError(f"stacking.feature_groups.{dim}: none of {', '.join(groups)} is among the "
                                      f"model's column groups ({', '.join(have)}); name at least one of them")
                raise TalkqaError(f"stacking.drop_columns.{dim} drops every column its trees could use; drop fewer")
        return out

    def columns_of(self, dim: str) -> list[str]:
        """The feature columns the trees of `dim` use (models saved before feature_groups use all)."""
        return self.columns_of_.get(dim, self.featurizer_.columns_)

    def _narrow(self, X: pd.DataFrame, dim: str) -> pd.DataFrame:
        """X as the trees of `dim` see it: the columns they were fitted on (X itself when it holds just those;
        `features` may add readings only a ceiling uses)."""
        columns = self.columns_of(dim)
        return X if len(columns) == X.shape[1] and list(X.columns) == columns else X[columns]

    def _view(self, data: StoreData) -> StoreData:
        return data.view(self.config.drop_experts, self.config.use_handcrafted)

    def tune(self, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, dim: str | None = None,
             seed: int | None = None) -> dict:
        """Optuna TPE search minimising speaker-grouped CV RMSE; returns the best params. `seed`: a bag
        member's, for the sampler and the trees (default: the config's)."""
        import optuna  # lazy: slow import, only on this path

        c = self.config
        seed = c.seed if seed is None else seed
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        folds = group_folds(groups, c.tuning_folds)

        def objective(trial):
            params = {"num_leaves": trial.suggest_int("num_leaves", 3, 31),
                      "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
                      "n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
                      "min_child_samples": trial.suggest_int("min_child_samples", 3, 20),
                      "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
                      "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True)}
            err = []
            for tr, te in folds:
                m = self._lgbm(params, dim, seed).fit(X.iloc[tr], y[tr])
                err.append(np.mean((m.predict(X.iloc[te]) - y[te]) ** 2))
            return float(np.sqrt(np.mean(err)))

        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=c.n_trials)
        return dict(study.best_params)

    def fit(self, data: StoreData, labels: Labels, clip_ids: list[str], log: Callable[[str], None] | None = None,
            ceiling_only: list[str] = (), ceiling_data: StoreData | None = None) -> "StackingRegressor":
        """`log` gets one line per dimension as it is done (tuning makes each take minutes). `ceiling_only` and
        `ceiling_data`: clips that only the evidence ceilings are fitted on (labelled in `labels` too), as
        `fit_ceilings` takes them: the model equals the one fitted without them and then given them."""
        logging.getLogger("lightgbm").setLevel(logging.ERROR)
        c = self.config
        store, data = data, self._view(data)
        clip_ids, extra = list(clip_ids), list(ceiling_only)
        _refuse_overlap(clip_ids, extra)
        self.featurizer_ = PooledFeaturizer(c.use_experts, c.use_handcrafted, c.include_scalars, c.pca_components,
                                            c.seed).fit(data, clip_ids)
        X = self.featurizer_.transform(data, clip_ids)
        self.monotone_ = self._monotone()
        if X.shape[1] == 0:
            raise TalkqaError("stacking has no features: enable experts or hand-crafted features")
        Y = labels.y(clip_ids)
        groups = labels.groups(clip_ids)
        self.dimensions_ = [d for k, d in enumerate(DIMENSION_NAMES) if np.isfinite(Y[:, k]).sum() >= 3]
        self.columns_of_ = self._columns_by_dimension(self.dimensions_)
        self.params_, self.models_ = {}, {}
        dealings = self._oof_dealings(groups, clip_ids)
        oof = np.full((len(clip_ids), len(DIMENSION_NAMES)), np.nan)
        for dim in self.dimensions_:
            k = DIMENSION_NAMES.index(dim)
            ok = np.isfinite(Y[:, k])
            Xk = self._narrow(X, dim)
            Xd, yd, gd = Xk[ok], Y[ok, k], groups[ok]
            # a bag: each member tuned and fitted with its own seed, exactly as a model of that seed alone
            # would be, so a bag of two equals the mean of the models of seeds s and s + 1
            params, members, member_oof = [], [], np.full((c.bag, len(clip_ids)), np.nan)
            for i, seed in enumerate(range(c.seed, c.seed + c.bag)):
                params.append(self.tune(Xd, yd, gd, dim, seed) if c.n_trials else {})
                members.append(self._lgbm(params[-1], dim, seed).fit(Xd, yd))
                member_oof[i] = self._member_oof(Xk, Y[:, k], params[-1], dim, seed, dealings)
            oof[:, k] = member_oof.mean(axis=0)
            self.params_[dim] = params[0] if c.bag == 1 else params  # a bag keeps each member's (state.json)
            self.models_[dim] = members[0] if c.bag == 1 else LoadedTrees(
                mean_of_models([m.booster_.model_to_string() for m in members]))
            if log:
                log(f"stacking: {dim} done ({self.dimensions_.index(dim) + 1}/{len(self.dimensions_)}, "
                    f"{Xk.shape[1]} features, {c.n_trials} tuning trials"
                    + (f", a bag of {c.bag} seeds)" if c.bag > 1 else ")"))
        self.oof_ = pd.DataFrame(oof, index=pd.Index(clip_ids, name="clip_id"), columns=list(DIMENSION_NAMES))
        self._fit_level2(Y)
        # the readings fit_ceilings takes (a ceiling may name one no tree reads), so that training with the
        # ceilings and giving them to the trees later fit the same ones
        self._fit_ceilings(self._with_ceiling_readings(X, store, clip_ids), labels, clip_ids,
                           self._ceiling_readings(store if ceiling_data is None else ceiling_data, extra), extra)
        return self

    @classmethod
    def bag_of(cls, members: list["StackingRegressor"], data: StoreData, labels: Labels,
               clip_ids: list[str]) -> "StackingRegressor":
        """The model `fit` makes with `bag: len(members)` and `seed: s`, from models fitted alone with seeds
        s, s + 1, ... and otherwise the same config on the same clips (in the same order): their trees merged
        into one booster per dimension, their out-of-fold predictions averaged, and level 2, the calibration
        and the ceilings fitted on those, as `fit` does. Seeds can so be trained apart (or one more added
        later) and bagged without training any again."""
        if not members:
            raise TalkqaError("a bag needs at least one model")
        first = members[0]
        seeds = [m.config.seed for m in members]
        if any(m.config.bag != 1 for m in members) or seeds != list(range(seeds[0], seeds[0] + len(members))):
            raise TalkqaError(f"a bag is made of single models of consecutive seeds (s, s + 1, ...); got seeds {seeds} "
                              f"and bags {[m.config.bag for m in members]}")
        if any(m.oof_ is None for m in members):
            raise TalkqaError("a model without its out-of-fold predictions (oof.parquet) cannot join a bag")
        same = first.config.model_dump(exclude={"seed"})
        for m in members[1:]:
            if m.config.model_dump(exclude={"seed"}) != same:
                raise TalkqaError("the models' stacking configs differ in more than the seed; a bag is one recipe")
            if m.featurizer_.columns_ != first.featurizer_.columns_ or m.dimensions_ != first.dimensions_:
                raise TalkqaError("the models were fitted on different features or dimensions; a bag is one recipe")
            if list(m.oof_.index) != list(first.oof_.index):
                raise TalkqaError("the models were fitted on different clips; a bag is one training set")
        if list(first.oof_.index) != list(clip_ids):
            raise TalkqaError(f"the models were fitted on {len(first.oof_)} clips, not these {len(clip_ids)}")
        self = cls(first.config.model_copy(update={"bag": len(members)}))
        self.featurizer_ = first.featurizer_
        self.monotone_, self.columns_of_, self.dimensions_ = first.monotone_, first.columns_of_, first.dimensions_
        self.params_ = {d: [m.params_[d] for m in members] for d in self.dimensions_} if len(members) > 1 \
            else dict(first.params_)
        self.models_ = {d: LoadedTrees(mean_of_models([_text(m.models_[d]) for m in members])) for d in self.dimensions_}
        columns = list(DIMENSION_NAMES)
        self.oof_ = sum(m.oof_[columns] for m in members) / len(members)
        self._fit_level2(labels.y(list(clip_ids)))
        return self.fit_ceilings(data, labels, list(clip_ids))

    def _oof_folds(self, groups, clip_ids: list[str] | None = None,
                   seed: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """The out-of-fold folds as config.oof_folds_by deals them with `seed` (default config.oof_folds_seed);
        with `clip_ids` (a fit), each clip's fold is kept in fold_of_."""
        seed = self.config.oof_folds_seed if seed is None else seed
        if self.config.oof_folds_by == "speaker_names":
            folds = name_folds(groups, self.config.oof_folds, seed)
        else:
            folds = group_folds(groups, self.config.oof_folds, seed or None)
        if clip_ids is not None:
            self.fold_of_ = pd.Series(-1, index=pd.Index(clip_ids, name="clip_id"))
            for f, (_, te) in enumerate(folds):
                self.fold_of_.iloc[te] = f
        return folds

    def _oof_dealings(self, groups, clip_ids: list[str]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """The oof_repeats dealings whose out-of-fold predictions are averaged; the first (oof_folds_seed) is
        the one fold_of_ records and the out-of-fold caps use."""
        first = self.config.oof_folds_seed
        return [self._oof_folds(groups, clip_ids)] + [self._oof_folds(groups, seed=s)
                                                      for s in range(first + 1, first + self.config.oof_repeats)]

    def _member_oof(self, Xk: pd.DataFrame, y: np.ndarray, params: dict, dim: str, seed: int,
                    dealings) -> np.ndarray:
        """One bag member's out-of-fold level-1 predictions, the mean over the dealings (NaN where a fold has
        too few labelled clips)."""
        ok, out = np.isfinite(y), np.full((len(dealings), len(y)), np.nan)
        for r, folds in enumerate(dealings):
            for tr, te in folds:
                tr = tr[ok[tr]]
                if len(tr) >= 3:
                    out[r, te] = self._lgbm(params, dim, seed).fit(Xk.iloc[tr], y[tr]).predict(Xk.iloc[te])
        return out.mean(axis=0)

    def with_level2(self, config: StackingConfig, labels: Labels, clip_ids: list[str],
                    data: StoreData | None = None) -> "StackingRegressor":
        """A copy whose stages after the trees are fitted again under `config`, which may change only
        meta_learner, meta_from, calibration, oof_folds_by, oof_folds_seed and oof_repeats: the model `fit` makes
        with `config`, its tuned trees unchanged. Level 2 and the calibration take seconds; other folds (which need
        `data`) fit each dimension's out-of-fold trees again with its tuned parameters, then the out-of-fold caps."""
        if self.oof_ is None:
            raise TalkqaError("a model without its out-of-fold predictions (oof.parquet) cannot refit level 2")
        after_trees = {"meta_learner", "meta_from", "calibration", "oof_folds_by", "oof_folds_seed", "oof_repeats"}
        if config.model_dump(exclude=after_trees) != self.config.model_dump(exclude=after_trees):
            raise TalkqaError("refitting after the trees changes meta_learner, meta_from, calibration, oof_folds_by, "
                              "oof_folds_seed or oof_repeats only; anything else needs `talkqa train`")
        if list(self.oof_.index) != list(clip_ids):
            raise TalkqaError(f"the model was fitted on {len(self.oof_)} clips, not these {len(clip_ids)}")
        dealing = {"oof_folds_by", "oof_folds_seed", "oof_repeats"}
        refold = config.model_dump(include=dealing) != self.config.model_dump(include=dealing)
        if refold and data is None:
            raise TalkqaError("other out-of-fold folds (oof_folds_by, oof_folds_seed, oof_repeats) need the training "
                              "store to fit the folds' trees")
        out = copy.copy(self)
        out.config = config
        clip_ids = list(clip_ids)
        if refold:
            X = out.featurizer_.transform(out._view(data), clip_ids)
            Y, dealings = labels.y(clip_ids), out._oof_dealings(labels.groups(clip_ids), clip_ids)
            oof = np.full((len(clip_ids), len(DIMENSION_NAMES)), np.nan)
            for dim in out.dimensions_:
                k = DIMENSION_NAMES.index(dim)
                params = out.params_[dim] if config.bag > 1 else [out.params_[dim]]
                Xk = out._narrow(X, dim)
                oof[:, k] = np.mean([out._member_oof(Xk, Y[:, k], p, dim, config.seed + i, dealings)
                                     for i, p in enumerate(params)], axis=0)
            out.oof_ = pd.DataFrame(oof, index=pd.Index(clip_ids, name="clip_id"), columns=list(DIMENSION_NAMES))
            out._fit_level2(Y)
            return out._fit_ceilings(X, labels, clip_ids)
        out._fit_level2(labels.y(clip_ids))
        return out

    def _fit_level2(self, Y: np.ndarray) -> None:
        """Level 2 (the meta-learner) and the calibration, on the out-of-fold level-1 predictions."""
        c = self.config
        self.meta_ = {}
        if c.meta_learner == "ridge":
            for dim in self.dimensions_:
                k = DIMENSION_NAMES.index(dim)
                inputs = [d for d in self.dimensions_ if d in c.meta_from.get(dim, self.dimensions_)]
                if not inputs:
                    continue
                M = self.oof_[inputs].to_numpy()
                ok = np.isfinite(Y[:, k]) & np.isfinite(M).all(1)
                if ok.sum() >= 5:
                    ridge = _ridge_cv(alphas=np.logspace(-3, 3, 13)).fit(M[ok], Y[ok, k])
                    # held over every dimension, 0 for those it does not read: the saved state and the
                    # prediction keep one shape whatever meta_from says
                    coef = np.zeros(len(self.dimensions_))
                    coef[[self.dimensions_.index(d) for d in inputs]] = ridge.coef_
                    self.meta_[dim] = Linear(coef, float(ridge.intercept_))
        self.calibration_ = {}
        if c.calibration == "isotonic":
            level2 = self._level2(self.oof_)
            for dim in self.dimensions_:
                k = DIMENSION_NAMES.index(dim)
                curve = MonotoneMap.fit(level2[dim].to_numpy(), Y[:, k])
                if curve.steps >= 3:  # fewer: the out-of-fold predictions do not order the labels at all
                    self.calibration_[dim] = curve

    def fit_ceilings(self, data: StoreData, labels: Labels, clip_ids: list[str],
                     ceiling_only: list[str] = (), ceiling_data: StoreData | None = None) -> "StackingRegressor":
        """The evidence ceilings of `config.ceilings` on these clips' readings and labels (stacking/ceilings.py),
        and, for the out-of-fold scores, each clip's caps from ceilings fitted on the other folds' speakers.
        Ceilings depend on the readings and labels only, not on the trees, so a fitted model can take them
        later (`benchmarks/add_ceilings.py`) and gets what `fit` would have given it.

        `ceiling_only`: more labelled clips of the training speakers (in `data` and `labels`) that the ceilings
        are fitted on and the trees never saw — a corpus of one fault that gives a ceiling enough clips without
        moving any tree, level 2 or calibration, and so no dimension but the capped one. Out of fold, a
        fold's ceilings leave out the ceiling-only clips of its speakers too. Their readings come from
        `ceiling_data` (default: `data`), whose stores need no experts unless a ceiling reads one."""
        clip_ids, extra = list(clip_ids), list(ceiling_only)
        _refuse_overlap(clip_ids, extra)
        return self._fit_ceilings(self.features(data, clip_ids), labels, clip_ids,
                                  self._ceiling_readings(data if ceiling_data is None else ceiling_data, extra), extra)

    def _ceiling_readings(self, data: StoreData, clip_ids: list[str]) -> pd.DataFrame:
        """The readings the ceilings name, for clips the trees need not read."""
        columns = sorted({col for columns in self.config.ceilings.values() for col in columns})
        return _store_readings(data, clip_ids, columns)

    def _fit_ceilings(self, X: pd.DataFrame, labels: Labels, clip_ids: list[str],
                      E: pd.DataFrame | None = None, extra: list[str] = ()) -> "StackingRegressor":
        c = self.config
        Y = labels.y(clip_ids)
        extra = list(extra)
        Ye = labels.y(extra) if extra else np.zeros((0, Y.shape[1]))
        E = pd.DataFrame(index=pd.Index([], name="clip_id")) if E is None else E
        every_extra = np.arange(len(extra))

        def fitted(rows, extra_rows=every_extra) -> dict[str, list[Ceiling]]:
            out = {}
            for dim, columns in c.ceilings.items():
                if dim not in self.dimensions_:
                    continue
                k = DIMENSION_NAMES.index(dim)
                found = []
                for col, sign in columns.items():
                    if col not in X:
                        continue
                    more = E[col].to_numpy()[extra_rows] if col in E else np.full(len(extra_rows), np.nan)
                    found.append(Ceiling.fit(col, sign, np.r_[X[col].to_numpy()[rows], more],
                                             np.r_[Y[rows, k], Ye[extra_rows, k]], c.ceiling_quantile,
                                             c.ceiling_min_clips, c.ceiling_from.get(col)))
                if found := [f for f in found if f.steps]:
                    out[dim] = found
            return out

        self.ceilings_ = fitted(np.arange(len(clip_ids)))
        oof = self.oof_
        if oof is None:
            return self
        oof = oof[[col for col in oof.columns if not col.startswith(_CAP)]]
        # each fold's caps from the ceilings fitted without it, saved beside the out-of-fold predictions as
        # cap__<dimension> (inf: no cap). A fold's ceiling can have steps where the one fitted on every clip has
        # none (the reading says nothing over all of them), so the columns are those of any fit.
        groups, extra_groups = labels.groups(clip_ids), labels.groups(extra) if extra else np.zeros(0, object)
        per_fold = [(te, fitted(tr, np.flatnonzero(~np.isin(extra_groups, groups[te]))))
                    for tr, te in self._oof_folds(groups)]
        dims = [d for d in c.ceilings if d in self.ceilings_ or any(d in f for _, f in per_fold)]
        if dims:
            caps = pd.DataFrame(np.inf, index=X.index, columns=[_CAP + d for d in dims])
            for te, fold_ceilings in per_fold:  # the folds of the level-1 fit
                for dim, ceilings in fold_ceilings.items():
                    caps.iloc[te, caps.columns.get_loc(_CAP + dim)] = lowest_caps(ceilings, X.iloc[te])[0]
            oof = oof.join(caps.reindex(oof.index).fillna(np.inf))  # a clip not refitted: no cap
        self.oof_ = oof
        return self

    def ceilings_summary(self) -> dict[str, list[dict]]:
        """The fitted ceilings as model.json and the model card show them."""
        return {dim: [c.to_dict() for c in cs] for dim, cs in self.ceilings_.items()}

    def caps(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per clip and dimension, the lowest evidence ceiling (inf: none binds); X as `features` gives it."""
        out = pd.DataFrame(np.inf, index=X.index, columns=list(self.dimensions_))
        for dim, ceilings in self.ceilings_.items():
            out[dim] = lowest_caps(ceilings, X)[0]
        return out

    def _level2(self, base: pd.DataFrame) -> pd.DataFrame:
        """The meta-learner's prediction from level-1 predictions (level 1 itself without one)."""
        out = base.copy()
        for dim, meta in self.meta_.items():
            out[dim] = meta.predict(base[self.dimensions_].to_numpy())
        return out

    def oof_scores(self) -> pd.DataFrame | None:
        """What the stack says of each training clip out of fold: its out-of-fold level-1 predictions through
        level 2 and the calibration (both small maps, fitted on these same predictions), under the evidence
        ceilings fitted without the clip's fold, clipped to the scale."""
        if self.oof_ is None:
            return None
        caps = self.oof_.filter(like=_CAP).rename(columns=lambda c: c[len(_CAP):])
        return self._scores(self.oof_[self.dimensions_], caps if len(caps.columns) else None)

    def level1(self, data: StoreData, clip_ids: list[str]) -> pd.DataFrame:
        return self._level1(self.featurizer_.transform(self._view(data), list(clip_ids)))

    def _level1(self, X: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({d: self.models_[d].predict(self._narrow(X, d)) for d in self.dimensions_}, index=X.index)

    def predict(self, data: StoreData, clip_ids: list[str] | None = None) -> pd.DataFrame:
        clip_ids = list(data.clip_ids if clip_ids is None else clip_ids)
        X = self.features(data, clip_ids)  # once: the trees and the ceilings read it
        return self._scores(self._level1(X), self.caps(X) if self.ceilings_ else None)

    def _scores(self, base: pd.DataFrame, caps: pd.DataFrame | None = None) -> pd.DataFrame:
        """Level-1 predictions -> scores: level 2, the calibration curve, the evidence ceilings, the scale's
        bounds."""
        out = self._level2(base)
        for dim, curve in self.calibration_.items():
            out[dim] = curve(out[dim].to_numpy())
        if caps is not None:
            for dim in caps.columns.intersection(out.columns):  # out of fold: also a dimension only folds cap
                out[dim] = np.minimum(out[dim].to_numpy(), caps[dim].reindex(out.index).to_numpy())
        for dim in out:
            lo, hi = _DIM[dim].scale
            out[dim] = out[dim].clip(lo, hi)
        return out

    def features(self, data: StoreData, clip_ids: list[str]) -> pd.DataFrame:
        """The trees' columns, then any reading an evidence ceiling names that they lack: a ceiling may be given
        to trees fitted before its reading existed (benchmarks/add_ceilings.py; version 34's longest held picture
        on version 33's trees). Such a reading comes from the store's hand-crafted features or expert scalars as
        they are; NaN (no cap) where the store lacks it."""
        clip_ids = list(clip_ids)
        return self._with_ceiling_readings(self.featurizer_.transform(self._view(data), clip_ids), data, clip_ids)

    def _with_ceiling_readings(self, X: pd.DataFrame, data: StoreData, clip_ids: list[str]) -> pd.DataFrame:
        """X (the trees' columns) and then the readings the ceilings name that it lacks, from the store `data`."""
        wanted = {col for columns in self.config.ceilings.values() for col in columns}
        wanted |= {c.column for ceilings in self.ceilings_.values() for c in ceilings}
        missing = sorted(wanted - set(X.columns))
        if not missing:
            return X
        return pd.concat([X, _store_readings(data, clip_ids, missing).set_axis(X.index)], axis=1)

    # ------------------------------------------------------------------------------------- save / load
    def save(self, folder: str | Path) -> Path:
        """config.yaml, state.json (featurizer columns, PCA, ridge meta-learners), level-1 LightGBM
        boosters as text (<dimension>.txt) and the out-of-fold predictions (oof.parquet)."""

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_config(self.config, folder / "config.yaml")
        f = self.featurizer_
        state = {
            "dimensions": self.dimensions_, "params": self.params_,
            "featurizer": {"use_experts": f.use_experts, "use_handcrafted": f.use_handcrafted,
                           "include_scalars": f.include_scalars, "pca_components": f.pca_components, "seed": f.seed,
                           "experts": f.experts_, "handcrafted": f.handcrafted_, "scalars": f.scalars_,
                           "columns": f.columns_, "group_of": {c: list(g) for c, g in f.group_of_.items()},
                           "pca": {k: {"components": p.components_.tolist(), "mean": p.mean_.tolist()}
                                   for k, p in f.pca_.items()}},
            "meta": {d: {"coef": np.asarray(m.coef_).tolist(), "intercept": float(m.intercept_)}
                     for d, m in self.meta_.items()},
            "monotone": self.monotone_,
            "columns_of": self.columns_of_,
            "calibration": {d: m.to_dict() for d, m in self.calibration_.items()},
            "ceilings": self.ceilings_summary(),
        }
        atomic_write_json(folder / "state.json", state)
        for dim, model in self.models_.items():  # fitted here (LightGBM), a bag's merged trees, or loaded
            atomic_write_text(folder / f"{dim}.txt", _text(model))
        if self.oof_ is not None:
            write_parquet(self.oof_.reset_index(), folder / "oof.parquet", "stacking.oof", stable_hash(state))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "StackingRegressor":
        """The level-1 models come back as `LoadedTrees` (NumPy predictions equal to LightGBM's; the
        LightGBM booster, for SHAP, on first use), PCA and ridge as their NumPy transforms: loading and
        predicting import neither lightgbm nor scikit-learn (start-up time of `talkqa score`)."""
        folder = Path(folder)
        for name in ("config.yaml", "state.json"):
            if not (folder / name).is_file():
                raise TalkqaError(f"{folder} is not a stacking model folder ({name} missing); train one first")
        self = cls(load_config(StackingConfig, folder / "config.yaml"))
        state = json.loads((folder / "state.json").read_text())
        s = state["featurizer"]
        f = PooledFeaturizer(s["use_experts"], s["use_handcrafted"], s["include_scalars"], s["pca_components"], s["seed"])
        f.experts_, f.handcrafted_, f.scalars_, f.columns_ = s["experts"], s["handcrafted"], s["scalars"], s["columns"]
        f.group_of_ = {c: tuple(g) for c, g in s["group_of"].items()}
        f.pca_ = {name: Projection(np.asarray(p["components"]), np.asarray(p["mean"])) for name, p in s["pca"].items()}
        self.featurizer_ = f
        self.dimensions_ = state["dimensions"]
        self.params_ = state["params"]
        self.models_ = {}
        for dim in self.dimensions_:
            path = folder / f"{dim}.txt"
            if not path.is_file():
                raise TalkqaError(f"{folder}: {path.name} missing; the stacking model folder is incomplete")
            self.models_[dim] = LoadedTrees(path.read_text())
        self.meta_ = {dim: Linear(np.asarray(m["coef"]), float(m["intercept"])) for dim, m in state["meta"].items()}
        self.monotone_ = state.get("monotone", {})  # models saved before calibration existed have neither
        self.columns_of_ = state.get("columns_of", {})  # absent: every dimension uses every column
        self.calibration_ = {dim: MonotoneMap.from_dict(m) for dim, m in state.get("calibration", {}).items()}
        self.ceilings_ = {dim: [Ceiling.from_dict(c) for c in cs] for dim, cs in state.get("ceilings", {}).items()}
        self._oof_file = folder / "oof.parquet"  # read on first use: scoring never needs it
        return self
