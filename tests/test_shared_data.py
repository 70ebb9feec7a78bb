"""configs/shared_data.yaml (speaker groups, sync verdicts, held-out speakers) and the shared manifest
built from it: on a tiny made-up MANIFEST.tsv, and on ../shared/data when it is there."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from talkqa.errors import UsageError
from talkqa.manifest import load_manifest
from talkqa.shared_data import (HELDOUT, TRAIN, SharedDataSpec, heldout_manifest, load_shared_spec,
                                shared_manifest)

SPEC = {
    "same_person": {"bob": ["real/a/bob1", "real/b/bob2"]},
    "folder_groups": {"real/grid": "grid"},
    "sync": {"real/a/bob1": {"verdict": "offset", "frames": -5, "why": "audio leads"},
             "real/c/carol": {"verdict": "unknown", "why": "flat curve"}},
    "recording": {"real/grid/s2": {"unlabelled": ["audio_quality"], "why": "DNSMOS OVRL 1.2"}},
    "heldout": {"bob": "two folders", "c/carol": "the only one"},
}


def _listing(folder, rows):
    cols = ["local_path", "language", "has_audio"]
    pd.DataFrame(rows, columns=cols).to_csv(folder / "MANIFEST.tsv", sep="\t", index=False)
    return folder


@pytest.fixture
def tiny(tmp_path):
    return _listing(tmp_path, [("real/a/bob1.mp4", "en", "yes"), ("real/b/bob2.mp4", "en", "yes"),
                               ("real/c/carol.mp4", "zh", "yes"), ("real/grid/s1.mpg", "en", "yes"),
                               ("real/grid/s2.mpg", "en", "yes"), ("real/d/dan.mp4", "en", "no"),
                               ("generated/w2l/x.mp4", "en", "yes")])


def test_speakers_splits_and_sync_come_from_the_spec(tiny):
    df = shared_manifest("real", tiny, SharedDataSpec(**SPEC)).set_index("clip_id")
    assert list(df.index) == ["real/a/bob1", "real/b/bob2", "real/c/carol", "real/grid/s1", "real/grid/s2", "real/d/dan"]
    assert df["speaker"].to_dict() == {"real/a/bob1": "bob", "real/b/bob2": "bob", "real/c/carol": "c/carol",
                                       "real/grid/s1": "grid", "real/grid/s2": "grid", "real/d/dan": "d/dan"}
    assert set(df.loc[df["split"] == HELDOUT].index) == {"real/a/bob1", "real/b/bob2", "real/c/carol"}
    assert set(df.loc[df["split"] == TRAIN, "speaker"]).isdisjoint(df.loc[df["split"] == HELDOUT, "speaker"])
    assert df["meta__sync"].to_dict() == {"real/a/bob1": "offset", "real/b/bob2": "in_sync", "real/c/carol": "unknown",
                                          "real/grid/s1": "in_sync", "real/grid/s2": "in_sync", "real/d/dan": "no_audio"}
    assert df.loc["real/a/bob1", "meta__sync_offset_frames"] == -5 and df["meta__sync_offset_frames"].isna().sum() == 5
    # a poor recording loses its dimension's label and overall's (which combines it); the others keep theirs
    assert df["meta__unlabelled"].to_dict() == {c: ("audio_quality;overall" if c == "real/grid/s2" else "")
                                                for c in df.index}


def test_a_recording_fault_names_a_real_dimension():
    with pytest.raises(ValueError, match="unlabelled"):
        SharedDataSpec(recording={"real/x/1": {"unlabelled": ["loudness"], "why": "?"}})
    with pytest.raises(ValueError, match="unlabelled"):
        SharedDataSpec(recording={"real/x/1": {"unlabelled": [], "why": "nothing"}})
    spec = SharedDataSpec(recording={"real/x/1": {"unlabelled": ["visual_quality", "audio_quality"], "why": "both"}})
    assert spec.unlabelled_of("real/x/1") == ["visual_quality", "audio_quality", "overall"]
    assert spec.unlabelled_of("real/x/2") == []


def test_heldout_manifest_keeps_only_heldout_clips_in_sync(tiny, monkeypatch):
    import talkqa.shared_data as sd

    monkeypatch.setattr(sd, "load_shared_spec", lambda path=None: SharedDataSpec(**SPEC))
    assert list(heldout_manifest(tiny)["clip_id"]) == ["real/b/bob2"]
    assert list(heldout_manifest(tiny, in_sync_only=False)["clip_id"]) == ["real/a/bob1", "real/b/bob2", "real/c/carol"]


def test_the_shared_manifest_is_a_valid_talkqa_manifest(tiny, tmp_path):
    df = shared_manifest("real", tiny, SharedDataSpec(**SPEC))
    df.to_csv(tmp_path / "m.csv", index=False)
    loaded, problems = load_manifest(tmp_path / "m.csv")
    assert len(loaded) == 6 and not [p for p in problems if p.fatal]


@pytest.mark.parametrize("change, message", [
    ({"heldout": {"nobody": "typo"}}, "held-out speaker nobody"),
    ({"sync": {"real/a/gone": {"verdict": "unknown"}}}, "clip real/a/gone"),
    ({"same_person": {"bob": ["real/a/bob1", "real/x/ghost"]}}, "clip real/x/ghost"),
    ({"recording": {"real/x/gone": {"unlabelled": ["audio_quality"], "why": "?"}}}, "clip real/x/gone"),
])
def test_a_name_the_data_does_not_have_is_refused(tiny, change, message):
    with pytest.raises(UsageError, match=message):
        shared_manifest("real", tiny, SharedDataSpec(**{**SPEC, **change}))


def test_the_spec_refuses_contradictions(tmp_path):
    with pytest.raises(ValueError, match="two speaker groups"):
        SharedDataSpec(same_person={"a": ["real/x/1"], "b": ["real/x/1"]})
    with pytest.raises(ValueError, match="frames"):
        SharedDataSpec(sync={"real/x/1": {"verdict": "offset"}})
    with pytest.raises(ValueError, match="frames"):
        SharedDataSpec(sync={"real/x/1": {"verdict": "in_sync", "frames": 2}})
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"sync": {"real/x/1": {"verdict": "maybe"}}}))
    with pytest.raises(UsageError, match="bad.yaml"):
        load_shared_spec(bad)


def test_the_shipped_spec_loads_and_keeps_the_mandarin_speakers_held_out():
    spec = load_shared_spec()
    assert spec.speaker_of("real/styletalk/Obama_clip2") == spec.speaker_of("real/hyperlips/video2") == "obama"
    assert spec.speaker_of("real/lipnet_grid/evaluation_samples_GRID_bbaf2n") == "grid"
    assert spec.split_of(spec.speaker_of("real/hellomeme/xzy2")) == HELDOUT
    assert spec.split_of(spec.speaker_of("real/xuniren/xuniren_train")) == HELDOUT
    assert spec.split_of("obama") == TRAIN
    assert spec.sync_of("real/hellomeme/xzy1").verdict == "offset"
    assert spec.unlabelled_of("real/visualvoice/av-enhancement_test_videos_noisy_restaurant") == ["audio_quality", "overall"]


@pytest.mark.integration
def test_shared_data_heldout_is_a_quarter_of_the_speakers_and_disjoint(shared_data):
    df = shared_manifest("real", shared_data)
    held, train = df[df["split"] == HELDOUT], df[df["split"] == TRAIN]
    assert set(held["speaker"]).isdisjoint(train["speaker"])
    assert 0.2 <= held["speaker"].nunique() / df["speaker"].nunique() <= 0.3
    assert 15 <= len(held) <= 20
    assert held["language"].str.startswith("zh").sum() >= 4  # both Mandarin speakers
    assert held["clip_id"].str.startswith("real/pcavs/").sum() >= 5
    assert (held["meta__sync"] == "in_sync").sum() >= 10  # enough clean references for `talkqa check`
    assert set(df["meta__sync"]) <= {"in_sync", "offset", "unknown", "no_audio"}


@pytest.mark.integration
def test_manifest_script_prefixes_ids_and_keeps_speakers(shared_data, tmp_path):
    """`benchmarks/shared_manifest.py --id-prefix faults/` (a second corpus of the same sources): the same
    train clips and speakers under ids that cannot collide with the first corpus's."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TALKQA_SHARED_DATA": str(shared_data)}
    runs = {}
    for name, extra in (("plain", []), ("faults", ["--id-prefix", "faults/"])):
        out = tmp_path / f"{name}.csv"
        subprocess.run([sys.executable, "benchmarks/shared_manifest.py", "real", "--split", "train", "--out", str(out),
                        *extra], check=True, capture_output=True, env=env)
        runs[name] = pd.read_csv(out)
    plain, faults = runs["plain"], runs["faults"]
    assert list(faults["clip_id"]) == ["faults/" + c for c in plain["clip_id"]]
    assert list(faults["speaker"]) == list(plain["speaker"]) and (faults["split"] == TRAIN).all()
