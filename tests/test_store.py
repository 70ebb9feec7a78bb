import os

import pandas as pd
import pytest

from talkqa.store import atomic_write_bytes, cache_key, file_digest, parquet_meta, read_parquet, write_parquet


def test_parquet_metadata_round_trip(tmp_path):
    df = pd.DataFrame({"clip_id": ["a", "b"], "lipsync__x": [1.0, 2.0]})
    write_parquet(df, tmp_path / "t.parquet", "unit-test", params_hash="abc", weights_hash="w1")
    back = read_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, df)
    meta = parquet_meta(tmp_path / "t.parquet")
    assert meta["producer"] == "unit-test" and meta["params_hash"] == "abc" and meta["weights_hash"] == "w1"
    assert meta["code_version"]


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")

    class Boom(Exception):
        pass

    def explode(fh):
        fh.write(b"half")
        raise Boom

    from talkqa.store import atomic_write

    with pytest.raises(Boom):
        atomic_write(target, explode)
    assert target.read_bytes() == b"old"
    assert [p for p in os.listdir(tmp_path) if p != "out.bin"] == []


def test_cache_key_depends_on_content_not_path(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    assert file_digest(a) == file_digest(b)
    assert cache_key(file_digest(a), "p1") != cache_key(file_digest(a), "p2")
