"""Explained scores: exact per-clip contributions of the stacking model, summed into factors a person can
name (one per expert, one per hand-crafted feature), and the words experts and families declare for them.
The end-to-end checks (`score --explain`, the HTML report) are in test_score.py, on its tiny model."""

from __future__ import annotations

import numpy as np
import pytest

from synthetic_store import make_synthetic_store
from talkqa.experts.embed import create_expert
from talkqa.features.families import FAMILIES, FeatureLabel
from talkqa.features.families.audio import egemaps_label
from talkqa.labels import common_clips, load_labels
from talkqa.stacking.config import StackingConfig
from talkqa.stacking.explain import clip_contributions, factor_contributions
from talkqa.stacking.model import StackingRegressor
from talkqa.store_data import load_store

FAST = {"n_estimators": 40, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 4}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    paths = make_synthetic_store(tmp_path_factory.mktemp("explain_synth"), n_clips=40, n_speakers=8)
    data, labels = load_store(paths.store), load_labels(paths.manifest)
    return data, labels, common_clips(data, labels)


@pytest.mark.parametrize("meta_learner", ["ridge", "none"])
def test_contributions_add_up_to_the_stacking_prediction(synth, meta_learner):
    data, labels, ids = synth
    model = StackingRegressor(StackingConfig(n_trials=0, oof_folds=3, params=FAST, meta_learner=meta_learner)
                              ).fit(data, labels, ids)
    assert bool(model.meta_) == (meta_learner == "ridge")
    predicted = model.predict(data, ids[:4])
    for cid in ids[:4]:
        per_dim = clip_contributions(model, data, cid)
        assert list(per_dim) == model.dimensions_
        for dim, c in per_dim.items():
            assert list(c.contributions.index) == model.featurizer_.columns_
            assert np.clip(c.prediction, 1, 5) == pytest.approx(predicted.loc[cid, dim], abs=1e-6)
            assert 1.0 < c.base_value < 5.0


def test_an_experts_columns_are_one_factor_and_hand_crafted_ones_their_own(synth):
    data, labels, ids = synth
    model = StackingRegressor(StackingConfig(n_trials=0, oof_folds=3, params=FAST, pca_components=4)
                              ).fit(data, labels, ids)
    f = model.featurizer_
    assert any("__emb_" in c for c in f.columns_) and f.scalars_
    contrib = clip_contributions(model, data, ids[0])["lip_sync"].contributions
    table = factor_contributions(contrib, f.group_of_, set(f.scalars_))
    experts = table[table["kind"] == "expert"]
    assert sorted(experts["factor"]) == sorted(f.experts_)  # each expert exactly once
    assert set(table.loc[table["kind"] == "handcrafted", "factor"]) == set(f.handcrafted_)
    assert not table["factor"].str.contains("__emb_").any()
    assert table["contribution"].sum() == pytest.approx(contrib.sum(), abs=1e-9)
    assert list(table["contribution"].abs()) == sorted(table["contribution"].abs(), reverse=True)
    sync = experts.set_index("factor").loc["sync"]
    assert sync["contribution"] == pytest.approx(contrib[[c for c in contrib.index if c.startswith("sync__")]].sum())
    assert sync["from_readings"] == pytest.approx(contrib[[c for c in f.scalars_ if c.startswith("sync__")]].sum())
    hand = table[table["kind"] == "handcrafted"]
    assert np.allclose(hand["from_readings"], hand["contribution"])


def test_experts_describe_what_they_saw_in_words_with_numbers():
    sync = create_expert("sync")
    assert sync.title() == "lip-sync expert"
    off = sync.describe({"offset_frames": -9.0, "confidence": 0.05})
    assert off.startswith("lips and audio disagree") and "9 frames before the lips" in off and "0.05" in off
    ok = sync.describe({"offset_frames": 1.0, "confidence": 0.12})
    assert ok.startswith("audio and lips agree") and "1 frame after" in ok
    assert "little sync evidence" in sync.describe({"offset_frames": 0.0, "confidence": 0.01})
    # a 1 s offset: flat on the +-15 curve, its dip found on the wide one
    late = sync.describe({"offset_frames": 13.0, "confidence": 0.02, "wide_offset_frames": 26.0,
                          "wide_confidence": 0.15})
    assert "sound 26 frames after" in late and "wide curve" in late
    assert "little sync evidence" in sync.describe({"offset_frames": 13.0, "confidence": 0.02,
                                                    "wide_offset_frames": 26.0, "wide_confidence": 0.02})
    assert "natural" in create_expert("motion").describe({"naturalness_logit": 2.3})
    assert "unlike real" in create_expert("motion").describe({"naturalness_logit": -1.0})
    voice = create_expert("voice").describe({"quality_logit": 1.8, "dnsmos_ovrl": 3.4})
    assert voice == "clean voice (quality logit +1.8, DNSMOS 3.4)"


def test_the_default_description_lists_readings():
    from talkqa.experts.base import Expert

    class Bare(Expert):
        name = "bare"
        scalar_names = ("some_logit", "other")

    assert Bare().title() == "bare expert"
    assert Bare().describe({"some_logit": 1.234, "other": float("nan")}) == "some logit 1.23"
    assert Bare().describe({}) == "no reading for this clip"


def test_feature_labels_read_values_in_their_units():
    share = FeatureLabel("mouth closed while speaking", "% of speech", "{:.0f}", 100)
    assert share.reading(0.354) == "35 % of speech" and share.reading(float("nan")) == "not measured"
    lipsync = FAMILIES.create("lipsync")
    assert lipsync.feature_label("av_offset_frames").reading(3.0) == "+3 frames"
    assert FAMILIES.create("expression").feature_label("blink_rate_per_min").reading(2.1) == "2.1"
    audio = FAMILIES.create("audio", egemaps=False)
    assert audio.feature_label("dnsmos_ovrl").name.startswith("DNSMOS overall")
    assert audio.feature_label("no_such_feature") is None


def test_egemaps_names_are_read_by_rule():
    assert egemaps_label("F0semitoneFrom27.5Hz_sma3nz_amean") == FeatureLabel("eGeMAPS pitch, mean", "semitones", "{:.4g}")
    assert egemaps_label("slopeUV500-1500_sma3nz_amean").name == "eGeMAPS spectral slope 500-1500 Hz (unvoiced), mean"
    assert egemaps_label("loudness_sma3_pctlrange0-2").name == "eGeMAPS loudness, range (20th-80th percentile)"
    assert egemaps_label("mfcc3V_sma3nz_stddevNorm").unit == ""  # a normalised spread has no unit
    assert egemaps_label("F2bandwidth_sma3nz_stddevFallingSlope") is not None
    assert egemaps_label("somethingNew_sma3_amean") is None and egemaps_label("nounderscores") is None
