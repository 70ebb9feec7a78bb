from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from talkqa.scoring.cli import app
from talkqa.errors import UsageError
from talkqa.manifest import ManifestError, build_manifest, load_manifest


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_build_manifest_ids_and_levels(tmp_path):
    _touch(tmp_path / "wav2lip" / "spk1" / "a.mp4")
    _touch(tmp_path / "hallo" / "spk2" / "b c.MOV")
    _touch(tmp_path / "notes.txt")
    df = build_manifest(tmp_path, speaker_from=-1, generator_from=0)
    assert list(df["clip_id"]) == ["hallo/spk2/b c", "wav2lip/spk1/a"]
    assert list(df["speaker"]) == ["spk2", "spk1"]
    assert list(df["generator"]) == ["hallo", "wav2lip"]


def test_build_manifest_empty_folder_is_clear(tmp_path):
    with pytest.raises(UsageError, match="no videos"):
        build_manifest(tmp_path)


def test_cli_manifest_paths_relative_to_manifest(tmp_path):
    _touch(tmp_path / "clips" / "x.mp4")
    out = tmp_path / "meta" / "m.csv"
    res = CliRunner().invoke(app, ["manifest", str(tmp_path / "clips"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    df, warnings = load_manifest(out)
    assert warnings == []
    assert Path(df.loc[0, "video"]).resolve() == (tmp_path / "clips" / "x.mp4").resolve()


def test_validation_reports_every_problem_by_row(tmp_path):
    _touch(tmp_path / "a.mp4")
    pd.DataFrame(
        {
            "clip_id": ["a", "a", "c"],
            "video": ["a.mp4", "a.mp4", "a.mp4"],
            "mos_lip_sync": [4.0, 5.5, 0.5],
            "mystery": [1, 2, 3],
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "m.csv")
    text = str(info.value)
    problems = info.value.problems
    assert any(p.row is None and p.column == "mystery" for p in problems)
    assert any(p.row == 2 and p.column == "clip_id" and "duplicate" in p.reason for p in problems)
    assert any(p.row == 2 and p.column == "mos_lip_sync" and "outside" in p.reason for p in problems)
    assert any(p.row == 3 and p.column == "mos_lip_sync" for p in problems)
    assert "row 2" in text and "mystery" in text


def test_missing_file_is_a_warning_not_a_drop(tmp_path):
    _touch(tmp_path / "a.mp4")
    pd.DataFrame({"clip_id": ["a", "b"], "video": ["a.mp4", "gone.mp4"], "meta__note": ["x", "y"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    df, warnings = load_manifest(tmp_path / "m.csv")
    assert len(df) == 2  # nothing dropped
    assert len(warnings) == 1 and warnings[0].row == 2 and "does not exist" in warnings[0].reason


def test_missing_manifest_and_folder_given(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_manifest(tmp_path / "nope.csv")
    with pytest.raises(UsageError, match="folder"):
        load_manifest(tmp_path)
