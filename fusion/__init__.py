"""Cross-attention multi-task fusion of expert tokens + hand-crafted features (reads only the store).

Entry points: fusion.data.load_store / load_labels, fusion.train.FusionRegressor (fit / predict /
predict_windows / save / load), fusion.baselines.ScalarBaseline, fusion.metrics, fusion.weighting.WEIGHTINGS,
fusion.model.MODELS, fusion.synthetic_store.make_synthetic_store (tests and offline trials).
"""
