"""Out-of-fold expert readings: `train-expert --fold K/N` holds out speaker folds, `embed --out-of-fold`
reads every clip with the fold weights that never saw its speaker, and training records (and refuses to
mix) the two kinds of readings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from talkqa.errors import UsageError
from talkqa.experts.embed import FoldWeights, _fold_for, create_expert, run_embed
from talkqa.experts.sync import SyncConfig, SyncExpert
from talkqa.features.clip import PreprocessedClip
from talkqa.store import Store, parquet_meta, read_parquet, write_parquet
from test_expert_sync import TINY, talking_clip

SPEAKERS = ["ann", "bob", "cat", "dan"]
TINY_SET = [f"{k}={json.dumps(v)}" for k, v in TINY.items()]


def fold_items(expert: SyncExpert) -> list[tuple]:
    return [expert.training_item(talking_clip(3.0, seed=i, clip_id=f"{s}/clip"), s) for i, s in enumerate(SPEAKERS)]


def test_folds_hold_out_every_speaker_exactly_once():
    held, trained = [], []
    for k in (1, 2):
        expert = SyncExpert(SyncConfig(**TINY))
        metrics = expert.fit_items(fold_items(expert), seed=0, fold=(k, 2))
        assert metrics["fold"] == f"{k}/2" and metrics["heldout_groups"]
        assert not set(metrics["heldout_groups"]) & set(metrics["train_groups"])
        assert sorted(metrics["heldout_groups"] + metrics["train_groups"]) == SPEAKERS
        held += metrics["heldout_groups"]
        trained.append(set(metrics["train_groups"]))
    assert sorted(held) == SPEAKERS  # the two folds partition the speakers
    assert trained[0] != trained[1]


@pytest.mark.parametrize("fold, words", [((3, 2), "1 <= k <= n"), ((1, 1), "2 <= n"), ((1, 5), "only 4 speaker")])
def test_impossible_folds_are_refused(fold, words):
    expert = SyncExpert(SyncConfig(**TINY))
    with pytest.raises(ValueError, match=words):
        expert.fit_items(fold_items(expert), seed=0, fold=fold)


@pytest.fixture
def fold_weights(tmp_path):
    folders = []
    for k in (1, 2):
        expert = SyncExpert(SyncConfig(**TINY))
        expert.fit_items(fold_items(expert), seed=0, fold=(k, 2))
        expert.save(tmp_path / f"fold{k}")
        folders.append(tmp_path / f"fold{k}")
    return folders


def tiny_store(root, speakers: list[str]) -> Store:
    store = Store(root).ensure()
    rows = []
    for i, s in enumerate(speakers):
        key = f"key{i}"
        talking_clip(2.5, seed=10 + i, clip_id=f"{s}/variant{i}").save(store.track(key))
        rows.append({"clip_id": f"{s}/variant{i}", "status": "ok", "message": "", "speaker": s, "cache_key": key})
    write_parquet(pd.DataFrame(rows), store.status, "test")
    return store


def test_each_clip_is_read_by_the_fold_that_never_saw_its_speaker(tmp_path, fold_weights):
    store = tiny_store(tmp_path / "store", [*SPEAKERS, "eve"])  # eve: in no fold's clips at all
    table = run_embed(store.root, "sync", overrides=TINY_SET, out_of_fold=fold_weights)
    assert (table["status"] == "ok").all(), table
    folds = [FoldWeights.read("sync", f) for f in fold_weights]
    scalars = read_parquet(store.root / "experts" / "sync.scalars.parquet").set_index("clip_id")
    status = read_parquet(store.status)
    for row in status.itertuples():
        fold = _fold_for(folds, row.speaker)
        assert row.speaker not in fold.train_groups
        reader = create_expert("sync", overrides=[*TINY_SET, f"weights={json.dumps(str(fold.path))}"]).load()
        own = reader.embed(PreprocessedClip.load(store.track(row.cache_key))).scalars
        assert scalars.loc[row.clip_id, "sync__confidence"] == pytest.approx(own["confidence"], rel=1e-4)
    meta = parquet_meta(store.root / "experts" / "sync.parquet")
    configured = create_expert("sync", overrides=TINY_SET)
    assert meta["weights_hash"] == configured.weights_hash()  # the readings stand in for the configured expert
    assert [f["weights"] for f in meta["out_of_fold"]] == [str(f) for f in fold_weights]
    assert [f["weights_hash"] for f in meta["out_of_fold"]] == [
        create_expert("sync", overrides=[*TINY_SET, f"weights={json.dumps(str(f))}"]).weights_hash() for f in fold_weights]
    assert sorted(sum((f["heldout_groups"] for f in meta["out_of_fold"]), [])) == SPEAKERS


def test_a_speaker_every_fold_trained_on_gets_an_error_row(tmp_path, fold_weights):
    only = FoldWeights.read("sync", fold_weights[0])
    seen = only.train_groups[0]
    store = tiny_store(tmp_path / "store", [seen, only.heldout_groups[0]])
    table = run_embed(store.root, "sync", overrides=TINY_SET, out_of_fold=[fold_weights[0]]).set_index("clip_id")
    bad = table.loc[f"{seen}/variant0"]
    assert bad["status"] == "embed_error" and "every fold" in bad["message"] and seen in bad["message"]
    assert table.loc[f"{only.heldout_groups[0]}/variant1", "status"] == "ok"  # the batch goes on
    scalars = read_parquet(store.root / "experts" / "sync.scalars.parquet").set_index("clip_id")
    assert np.isnan(scalars.loc[f"{seen}/variant0", "sync__confidence"])


def test_weights_not_trained_in_folds_are_refused(tmp_path):
    folder = tmp_path / "plain"
    expert = SyncExpert(SyncConfig(**TINY))
    expert.fit_items(fold_items(expert), seed=0)
    meta_path = folder / "meta.json"
    expert.save(folder)
    meta = json.loads(meta_path.read_text())
    meta["metrics"].pop("train_groups")  # weights trained before folds existed name no training speakers
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(UsageError, match="--fold K/N"):
        FoldWeights.read("sync", folder)


def test_training_refuses_stores_that_mix_out_of_fold_and_own_readings(tmp_path):
    from talkqa.scoring.training import _expert_entries

    expert = create_expert("sync")
    base = {"version": expert.version, "params_hash": expert.params_hash(), "weights_hash": expert.weights_hash()}
    folds = [{"weights": "w/fold1", "weights_hash": "abc", "heldout_groups": ["ann"]}]
    stores = []
    for name, extra in (("oof", {"out_of_fold": folds}), ("own", {})):
        path = tmp_path / name / "experts" / "sync.parquet"
        path.parent.mkdir(parents=True)
        write_parquet(pd.DataFrame({"clip_id": ["x"]}), path, "experts.sync", base["params_hash"], base["weights_hash"],
                      {"version": expert.version, **extra})
        stores.append(tmp_path / name)
    entries = _expert_entries([stores[0]], ["sync"], {})
    assert entries["sync"]["training_readings"] == {"out_of_fold": folds}
    assert "training_readings" not in _expert_entries([stores[1]], ["sync"], {})["sync"]
    with pytest.raises(UsageError, match="not embedded alike"):
        _expert_entries(stores, ["sync"], {})


@pytest.mark.parametrize("args, words", [
    (["train-expert", "sync", "--store", "s", "--fold", "3/2"], "1 <= K <= N"),
    (["train-expert", "sync", "--store", "s", "--fold", "half"], "write K/N"),
    (["train-expert", "sync", "--store", "s", "--fold", "1/2", "--replace-shipped"], "not over the shipped"),
    (["embed", "--store", "s", "--experts", "sync,motion", "--out-of-fold", "w"], "one expert's fold weights"),
])
def test_the_commands_explain_impossible_fold_requests(args, words):
    from typer.testing import CliRunner

    from talkqa.scoring.cli import app

    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0 and words in " ".join(res.output.split()), res.output


def test_the_fold_probe_reads_each_variant_with_every_reader(tmp_path, load_benchmark, capsys):
    """benchmarks/sync_fold_probe.py: the shipped weights and each fold read the same clips and variants."""
    probe = load_benchmark("sync_fold_probe")
    store = tiny_store(tmp_path / "store", ["ann", "bob"])
    assert probe.main(["--store", str(store.root), "--out", str(tmp_path / "r.csv")]) == 0
    readings = pd.read_csv(tmp_path / "r.csv")
    assert set(readings["variant"]) == {"clean", "late_0.5s", "early_0.5s", "other_voice"}
    assert set(readings["reader"]) == {"shipped"} and len(readings) == 8
    assert "2 clips of 2 speakers" in capsys.readouterr().out
    one = tiny_store(tmp_path / "one", ["ann"])
    assert probe.main(["--store", str(one.root)]) == 1
