"""LightGBM stacking per dimension on pooled expert embeddings + hand-crafted features (reads only the
store): stacking.model.StackingRegressor (Optuna tuning, speaker-grouped OOF meta-features),
stacking.explain (SHAP TreeExplainer importance, beeswarm and waterfall plots; one clip's exact
contributions summed into factors: one per expert, one per hand-crafted feature)."""
