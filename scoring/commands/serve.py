"""`talkqa serve`: keep a model loaded and score clips over HTTP (scoring/serve.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..cli_app import app, friendly
from ..console import err, out


@app.command()
@friendly
def serve(
    host: str = typer.Option(
        "127.0.0.1", help="Address to listen on. The default, loopback, is reachable from this machine only; the "
        "service has no authentication, so give another address (0.0.0.0 = every interface) only on a network "
        "you trust, and think about --no-paths."),
    port: int = typer.Option(
        8000, min=0, max=65535, help="TCP port; 0 picks a free one (the URL printed at start says which)."),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="Model folder from `talkqa train` (default: the shipped model). Loaded once, "
        "before the port opens."),
    max_upload_mb: float = typer.Option(
        200.0, "--max-upload-mb", min=0.001, help="Largest request body (an uploaded clip) in MB; larger ones get "
        "HTTP 413 before they are read."),
    queue: int = typer.Option(
        8, "--queue", min=0, help="Requests that may wait while one clip is scored (clips are scored one at a "
        "time); more get HTTP 503 at once, so a client can back off."),
    paths: bool = typer.Option(
        True, "--paths/--no-paths", help='Accept JSON requests naming a file on this machine ({"path": '
        '"/abs/clip.mp4"}). --no-paths: uploads only (HTTP 403 for a path), for a port others can reach.'),
    threads: Optional[int] = typer.Option(
        None, min=1, help="CPU threads torch may use per clip (default: torch's own choice); lower it when the "
        "server shares the machine with training."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    warmup: Optional[Path] = typer.Option(
        None, "--warmup", help="A clip to score once before the port opens. The first clip pays for lazy imports "
        "and the start of every model (several seconds on a CPU); after a warm-up the first request is as fast "
        "as the next."),
    access_log: bool = typer.Option(
        True, "--access-log/--quiet", help="Print one line per request (uvicorn's access log, on stdout)."),
):
    """Keep a model loaded and score clips over HTTP: for pipelines that score a generator's output every
    few training steps, without paying the model's start-up on each call.

    POST /score takes a JSON body {"path": "/abs/clip.mp4", "audio": null} (a file on this machine; audio
    optional) or a multipart upload (form field `file`, optional `audio`) and answers with exactly the
    object `talkqa score --json` prints for that clip (an upload is named by its file name). Status: 200
    scored; 404 no such file; 422 the clip cannot be scored (not a video, no face, too short: the `error`
    field says why) or a malformed request; 403 a path under --no-paths; 413 too large; 415 neither JSON nor
    multipart; 503 the queue is full (retry later). Every error body has an `error` string. GET /health:
    model, queue depth, clips scored and failed, uptime. Uploads go to a temporary folder that is removed
    after each request. Ctrl-C (or SIGTERM) stops after answering the requests in flight.

    Examples: talkqa serve --model models/mine --port 8765 ;
    curl -s localhost:8765/score -H 'content-type: application/json' -d '{"path": "/data/clip.mp4"}' ;
    curl -s localhost:8765/score -F file=@clip.mp4
    """
    from talkqa.scoring.scorer import Scorer
    from talkqa.scoring.serve import LOOPBACK, ServeLimits, bind, create_app, url_of
    from talkqa.scoring.serve import serve as run_server

    sock = bind(host, port)
    try:
        scorer = Scorer(model, device, threads)
        limits = ServeLimits(max_upload_bytes=int(max_upload_mb * 2**20), queue=queue, allow_paths=paths)
        if warmup is not None:
            r = scorer.score(warmup)
            if r.error:
                err.print(f"[yellow]warning:[/] warm-up clip not scored ({escape(r.error)}); the first request will be "
                          "slower", highlight=False, soft_wrap=True)
            else:
                err.print(f"warm-up: {escape(str(warmup))} scored in {r.elapsed_s:.1f} s", highlight=False)
        sock.listen(128)  # from here on a client's request waits for the server instead of being refused
        url = url_of(sock)
        if host not in LOOPBACK:
            err.print(f"[yellow]warning:[/] listening on {escape(host)}: anyone who can reach this port can score clips"
                      + (" and make the server read any file it can read (use --no-paths to accept uploads only)"
                         if paths else ""), highlight=False, soft_wrap=True)
        out.print(f"talkqa serve: model {escape(scorer.model['name'])} {escape(scorer.model['version'])} "
                  f"listening on {url} (POST /score, GET /health); Ctrl-C stops", highlight=False, soft_wrap=True)
        out.file.flush()
        service = create_app(scorer, limits)
        run_server(service, sock, access_log)
        done = service.state.queue
        err.print(f"talkqa serve: stopped ({done.scored} clips scored, {done.failed} could not be)", highlight=False)
    finally:
        sock.close()
