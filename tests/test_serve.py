"""`talkqa serve` over real HTTP on loopback: the command runs in a subprocess with the tiny model
(tests/tiny_model.py) on a free port; the tests send real requests with httpx and stop it with Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from talkqa.scoring.cli import app

pytestmark = pytest.mark.slow  # a server process and a few clips scored: about 30 s with the tiny model

KEYS = ["clip", "scores", "sync", "diagnostics", "warnings", "error", "model"]
MAX_UPLOAD_MB = 1


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):
    """`talkqa serve --port 0` (a free port, read back from its first line); no waiting room (--queue 0),
    so that a second request while one is scored gets 503. Its temporary files go to `scratch`."""
    root = tmp_path_factory.mktemp("serve")
    scratch = root / "tmp"
    scratch.mkdir()
    out, err = (root / "stdout.txt").open("w"), (root / "stderr.txt").open("w")
    cmd = [sys.executable, "-m", "talkqa.scoring.cli", "serve", "--port", "0", "--model", str(bundle), "--queue", "0",
           "--max-upload-mb", str(MAX_UPLOAD_MB), "--threads", "1"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**env, "TMPDIR": str(scratch)})
    url = None
    deadline = time.monotonic() + 120
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        found = re.search(r"listening on (http://\S+)", (root / "stdout.txt").read_text())
        url = found and found.group(1)
    if url is None:
        proc.kill()
        pytest.fail(f"talkqa serve did not start:\n{(root / 'stderr.txt').read_text()[-3000:]}")
    try:
        yield {"url": url, "proc": proc, "scratch": scratch, "stderr": root / "stderr.txt"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        out.close()
        err.close()


def post(server, **kwargs) -> httpx.Response:
    return httpx.post(server["url"] + "/score", timeout=120, **kwargs)


def test_health_names_the_model_and_the_queue(server):
    r = httpx.get(server["url"] + "/health", timeout=10)
    assert r.status_code == 200
    health = r.json()
    assert health["status"] == "ok" and health["model"] == {"name": "tiny-test", "version": "1"}
    assert health["queue"] == {"scoring": 0, "waiting": 0, "limit": 0}
    assert health["uptime_s"] >= 0 and health["scored"] == health["failed"] == 0


def test_path_and_upload_give_what_talkqa_score_json_gives(server, score_inputs, bundle):
    good = score_inputs["good"][0]
    res = CliRunner().invoke(app, ["score", str(good), "--json", "--model", str(bundle)])
    assert res.exit_code == 0, res.output
    expected = json.loads(res.stdout)

    by_path = post(server, json={"path": str(good), "audio": None})
    assert by_path.status_code == 200, by_path.text
    assert list(by_path.json()) == KEYS and by_path.json() == expected
    assert float(by_path.headers["x-talkqa-seconds"]) > 0

    uploaded = post(server, files={"file": ("my clip.mp4", good.read_bytes(), "video/mp4")})
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json() == {**expected, "clip": "my clip.mp4"}  # named by the client's file name


@pytest.mark.parametrize("case, request_kwargs, status, says", [
    ("missing file", {"json": {"path": "/no/such/clip.mp4"}}, 404, "/no/such/clip.mp4"),
    ("relative path", {"json": {"path": "clip.mp4"}}, 422, "absolute path"),
    ("malformed JSON", {"content": b'{"path": ', "headers": {"content-type": "application/json"}}, 422, "not valid JSON"),
    ("no path", {"json": {"video": "/a.mp4"}}, 422, '"path"'),
    ("upload without file", {"files": {"video": ("a.mp4", b"x")}}, 422, "'file'"),
    ("form fields", {"data": {"path": "/a.mp4"}}, 415, "content type"),
])
def test_bad_requests_are_one_clear_error(server, case, request_kwargs, status, says):
    r = post(server, **request_kwargs)
    assert r.status_code == status, (case, r.text)
    assert says in r.json()["error"], (case, r.text)


def test_a_file_that_is_not_a_video_gets_the_scorers_error(server, score_inputs):
    text = score_inputs["text_as_mp4"][0]
    by_path = post(server, json={"path": str(text)})
    assert by_path.status_code == 422
    obj = by_path.json()
    assert list(obj) == KEYS and all(v is None for v in obj["scores"].values())
    assert obj["clip"] == str(text) and obj["error"].startswith(f"{text}: cannot be read as a media file")
    uploaded = post(server, files={"file": ("notes.mp4", text.read_bytes())}).json()
    # the client's file name, never the server's scratch copy
    assert uploaded["clip"] == "notes.mp4" and uploaded["error"] == obj["error"].replace(str(text), "notes.mp4")


def test_too_large_upload_gets_413_before_scoring(server):
    before = httpx.get(server["url"] + "/health").json()
    junk = os.urandom(2 * MAX_UPLOAD_MB * 2**20)
    r = post(server, files={"file": ("big.mp4", junk)})
    assert r.status_code == 413 and "--max-upload-mb" in r.json()["error"]

    def chunks():  # no Content-Length: the limit is enforced while the body is read
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
        for k in range(0, len(junk), 2**16):
            yield junk[k : k + 2**16]
        yield b"\r\n--B--\r\n"

    r = post(server, content=chunks(), headers={"content-type": "multipart/form-data; boundary=B"})
    assert r.status_code == 413
    after = httpx.get(server["url"] + "/health").json()
    assert (after["scored"], after["failed"]) == (before["scored"], before["failed"])  # nothing reached the Scorer


def test_a_full_queue_answers_503_at_once(server, score_inputs):
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(r=post(server, json={"path": str(score_inputs["good"][0])})))
    worker.start()
    deadline = time.monotonic() + 60
    while httpx.get(server["url"] + "/health").json()["queue"]["scoring"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    busy = post(server, json={"path": str(score_inputs["good"][0])})
    worker.join()
    assert busy.status_code == 503 and "--queue" in busy.json()["error"] and busy.headers["retry-after"]
    assert first["r"].status_code == 200


def test_uploads_leave_no_temporary_files(server):
    assert not list(server["scratch"].glob("talkqa-serve-*"))


def test_ctrl_c_stops_it_cleanly_and_quietly(server):
    proc = server["proc"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    stderr = server["stderr"].read_text()
    assert "Traceback" not in stderr
    assert not re.search(r"\w+Warning: ", stderr), stderr  # no third-party warnings from the CLI


def test_a_taken_port_is_one_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        res = CliRunner().invoke(app, ["serve", "--port", str(taken.getsockname()[1])])
    assert res.exit_code == 2 and "cannot listen on 127.0.0.1" in res.output and "Traceback" not in res.output
