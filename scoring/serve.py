"""`talkqa serve`: one Scorer kept warm behind a small local HTTP service (FastAPI + uvicorn).

    POST /score   {"path": "/abs/clip.mp4", "audio": null}   or a multipart upload (field `file`, optional `audio`)
                  -> exactly the object `talkqa score --json` prints for that clip (Result.to_dict())
    GET  /health  -> model, queue depth, clips scored, uptime

Scoring is CPU-bound and the Scorer already runs its two lanes in parallel, so one Scorer scores one clip
at a time on one thread; requests wait in a bounded queue in front of it and those beyond it get 503
at once (before their upload is read) rather than piling up. Every error body has an `error` string:
a clip that cannot be scored gives the Result itself (404 missing file, 422 not scorable, 500 a bug in
talkqa); a bad request gives {"error": ...} (403 a path under --no-paths, 413 too large, 415 wrong
content type, 422 malformed, 503 busy).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from talkqa import __version__
from talkqa.errors import UsageError

from .result import Result
from .scorer import Scorer

LOOPBACK = ("127.0.0.1", "localhost", "::1")
UPLOAD_FIELDS = ("file", "audio")
# A clip that cannot be scored: its error code decides the status; every other code is the clip's
# own problem (not a video, no face, too short, ...): 422.
STATUS_OF_ERROR = {"missing_file": 404, "internal_error": 500}


# The two bodies of POST /score, for the OpenAPI page (/docs): the endpoint reads the request itself.
SCORE_BODY = {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "required": ["path"], "properties": {
        "path": {"type": "string", "description": "absolute path of the video on the server's machine"},
        "audio": {"type": ["string", "null"], "description": "absolute path of an audio file replacing its track"}}}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"}, "audio": {"type": "string", "format": "binary"}}}}}}


@dataclass(frozen=True)
class ServeLimits:
    max_upload_bytes: int = 200 * 2**20
    queue: int = 8  # requests that may wait while one is scored
    allow_paths: bool = True  # JSON requests naming a file on the server's machine


class RequestError(Exception):
    """A request talkqa refuses: the status and the one sentence that goes to the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ScoringQueue:
    """One Scorer on one thread, with a bounded number of requests waiting for it."""

    def __init__(self, scorer: Scorer, queue: int):
        self.scorer, self.queue = scorer, queue
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="talkqa-serve")
        self.admitted = 0  # requests between admission and their answer (touched on the event loop only)
        self.running = 0
        self.scored = 0  # clips answered with scores
        self.failed = 0  # clips answered with an error (not a video, no face, ...)
        self.started = time.monotonic()

    def admit(self) -> None:
        if self.admitted >= self.queue + 1:
            raise RequestError(503, f"busy: one clip is being scored and {self.admitted - 1} request(s) wait "
                                    f"(queue limit {self.queue}); retry later, or start the server with a "
                                    "larger --queue")
        self.admitted += 1

    def release(self) -> None:
        self.admitted -= 1

    async def score(self, path: Path, audio: Path | None) -> Result:
        def job() -> Result:
            self.running += 1
            try:
                return self.scorer.score(path, audio)
            finally:
                self.running -= 1

        result = await asyncio.get_running_loop().run_in_executor(self._thread, job)
        if result.ok:
            self.scored += 1
        else:
            self.failed += 1
        return result

    def health(self) -> dict:
        return {
            "status": "ok",
            "model": dict(self.scorer.model),
            "talkqa_version": __version__,
            "device": self.scorer.device,
            "queue": {"scoring": self.running, "waiting": max(0, self.admitted - self.running),
                      "limit": self.queue},
            "scored": self.scored,
            "failed": self.failed,
            "uptime_s": round(time.monotonic() - self.started, 1),
        }

    def close(self) -> None:
        self._thread.shutdown(wait=True)


# --------------------------------------------------------------------------- request bodies
class _BodyLimit:
    """Wraps the ASGI `receive` so that reading more than `limit` bytes stops the upload (413)
    even when the client sent no Content-Length."""

    def __init__(self, receive, limit: int):
        self.receive, self.limit, self.read, self.exceeded = receive, limit, 0, False

    async def __call__(self):
        message = await self.receive()
        if message.get("type") == "http.request":
            self.read += len(message.get("body", b""))
            if self.read > self.limit:
                self.exceeded = True
                raise RequestError(413, "")
        return message


def _too_large(limits: ServeLimits) -> RequestError:
    return RequestError(413, f"request body larger than the server's limit of {limits.max_upload_bytes / 2**20:g} MB; "
                             "send a smaller clip, or start the server with a larger --max-upload-mb")


def _absolute(value, field: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RequestError(422, f'"{field}" must be a file path (a string), got {json.dumps(value)}')
    if not os.path.isabs(value):
        raise RequestError(422, f'"{field}" must be an absolute path ({value!r} is relative): the server reads it '
                                "on its own machine, whatever its working folder is")
    return Path(value)


async def _json_request(request: Request, limits: ServeLimits) -> tuple[Path, Path | None]:
    if not limits.allow_paths:
        raise RequestError(403, "this server scores uploads only (started with --no-paths); send the clip as a "
                                "multipart upload (field 'file')")
    body = await request.body()
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(422, f"the body is not valid JSON ({exc}); send "
                                '{"path": "/abs/clip.mp4", "audio": null}') from None
    if not isinstance(obj, dict) or "path" not in obj:
        raise RequestError(422, 'the JSON body needs "path" (absolute path of the video) and may have "audio"; '
                                f"got {body[:200].decode('utf-8', 'replace')}")
    unknown = sorted(set(obj) - {"path", "audio"})
    if unknown:
        raise RequestError(422, f"unknown key(s) {', '.join(map(repr, unknown))}; the JSON body has \"path\" and "
                                'optionally "audio"')
    return _absolute(obj["path"], "path"), _absolute(obj.get("audio"), "audio")


def _safe_suffix(filename: str) -> str:
    # the decoder probes the content; the suffix only helps it guess, so keep it only when it is plain
    suffix = Path(filename or "").suffix
    return suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ""


async def _upload_request(request: Request, folder: Path) -> tuple[dict[str, str], Path, Path | None]:
    """Copies the uploaded video (and audio) into `folder`; returns ({field: client file name}, paths)."""
    try:
        form = await request.form(max_files=len(UPLOAD_FIELDS))
    except HTTPException as exc:  # starlette's parser: a malformed multipart body
        raise RequestError(422, f"malformed multipart body ({exc.detail})") from None
    try:
        unknown = sorted(set(form) - set(UPLOAD_FIELDS))
        if unknown:
            raise RequestError(422, f"unknown form field(s) {', '.join(map(repr, unknown))}; upload the video as "
                                    "'file' (and optionally an audio track as 'audio')")
        names, paths = {}, {}
        for field in UPLOAD_FIELDS:
            upload = form.get(field)
            if upload is None:
                continue
            if not isinstance(upload, UploadFile):
                raise RequestError(422, f"form field '{field}' must be a file upload, not a text value")
            names[field] = Path(upload.filename or field).name
            paths[field] = folder / f"{field}{_safe_suffix(upload.filename)}"

            def copy(src=upload.file, dst=paths[field]) -> None:
                # a scratch copy removed after scoring, not an output: it needs no atomic write
                with open(dst, "wb") as fh:
                    shutil.copyfileobj(src, fh, 1 << 20)

            await run_in_threadpool(copy)
        if "file" not in paths:
            raise RequestError(422, "no video in the upload: send it as the form field 'file' "
                                    "(curl -F file=@clip.mp4 ...)")
        return names, paths["file"], paths.get("audio")
    finally:
        await form.close()


def _as_uploaded(result: Result, names: dict[str, str], paths: dict[str, Path | None]) -> Result:
    """The Result names the client's file, not the scratch copy the server scored."""
    result.clip = names["file"]
    if result.error:
        for field, path in paths.items():
            if path is not None:
                result.error = result.error.replace(str(path), names.get(field, field))
    return result


def _error(exc: RequestError) -> JSONResponse:
    headers = {"Retry-After": "5"} if exc.status == 503 else None
    return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)


# --------------------------------------------------------------------------- the app
def create_app(scorer: Scorer, limits: ServeLimits = ServeLimits()) -> FastAPI:
    queue = ScoringQueue(scorer, limits.queue)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        queue.close()

    app = FastAPI(title="talkqa", version=__version__, lifespan=lifespan,
                  description="Scores of talking-face videos on six 1-5 MOS dimensions, with diagnostics.")
    app.state.queue = queue

    @app.get("/health")
    async def health() -> dict:
        """Model, queue depth (clip being scored, requests waiting), clips scored and failed, uptime."""
        return queue.health()

    @app.post("/score", openapi_extra={"requestBody": SCORE_BODY})
    async def score(request: Request):
        """Score one clip: the object `talkqa score --json` prints for it."""
        try:
            size = request.headers.get("content-length")
            if size is not None and size.isdigit() and int(size) > limits.max_upload_bytes:
                raise _too_large(limits)
            queue.admit()
        except RequestError as exc:
            return _error(exc)
        limited = _BodyLimit(request.receive, limits.max_upload_bytes)
        request = Request(request.scope, limited)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        scratch = None
        try:
            if content_type == "application/json":
                video, audio = await _json_request(request, limits)
                result = await queue.score(video, audio)
            elif content_type == "multipart/form-data":
                scratch = Path(tempfile.mkdtemp(prefix="talkqa-serve-"))
                names, video, audio = await _upload_request(request, scratch)
                result = _as_uploaded(await queue.score(video, audio), names, {"file": video, "audio": audio})
            else:
                raise RequestError(415, f"unsupported content type {content_type or '(none)'!r}; send JSON "
                                        '{"path": "/abs/clip.mp4"} or a multipart upload (field \'file\')')
        except RequestError as exc:
            return _error(_too_large(limits) if limited.exceeded else exc)
        except Exception as exc:
            if limited.exceeded:
                return _error(_too_large(limits))
            return _error(RequestError(500, f"internal error in talkqa serve ({type(exc).__name__}: {exc}); "
                                            "please report it"))
        finally:
            queue.release()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        status = 200 if result.ok else STATUS_OF_ERROR.get(result.error_code or "", 422)
        return JSONResponse(result.to_dict(), status_code=status,
                            headers={"X-Talkqa-Seconds": f"{result.elapsed_s:.3f}"})

    return app


# --------------------------------------------------------------------------- running it
def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads so that a taken port fails at once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port, or stop what "
                         "uses it") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(app: FastAPI, sock: socket.socket, access_log: bool = True) -> None:
    """Serve until Ctrl-C or SIGTERM; requests in flight are answered before it returns."""
    def stop(_signum, _frame):
        raise KeyboardInterrupt

    config = uvicorn.Config(app, log_level="info" if access_log else "warning", access_log=access_log, lifespan="on")
    # uvicorn shuts down gracefully on the signal, then raises it again for the handler it found: as
    # KeyboardInterrupt here, both are the normal way to stop, not an interruption.
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
