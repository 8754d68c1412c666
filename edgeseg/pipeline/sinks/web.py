"""A live web view of a running pipeline: the overlay as an MJPEG stream, a page that shows it
beside live statistics (Server-Sent Events), and the same statistics as JSON.

Fixed routes, nothing else is served: ``/`` (the page), ``/stream.mjpg``, ``/frame.jpg``,
``/stats.json``, ``/events``. The pipeline only hands over its newest frame (O(1), never waits);
viewers' threads encode it to JPEG, once per frame and only while someone watches, and each viewer
always gets the newest encoding, so a slow or stalled viewer skips frames instead of queueing them.
Binds 127.0.0.1 unless told otherwise; any other address needs an access token, checked on every
request. Standard library only (``http.server``).
"""
from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import secrets
import socket
import socketserver
import threading
import time
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs

import numpy as np

from ... import defaults
from ...errors import EdgesegError
from .base import Sink

if TYPE_CHECKING:  # pragma: no cover
    from ..results import StreamResult

#: Viewers (MJPEG streams + stats event streams) served at once; more get 503.
DEFAULT_MAX_CLIENTS = defaults.WEB_MAX_CLIENTS
#: Seconds between two stats updates on /events.
STATS_PERIOD = 0.5
#: Seconds a client may take to send its request or to accept data before it is dropped.
CLIENT_TIMEOUT = 10.0
#: Frames kept for the live percentiles (a recent window, unlike the run's summary).
RECENT_FRAMES = 300
BOUNDARY = "edgesegframe"
PAGE = Path(__file__).with_name("web_view.html")
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                     "Referrer-Policy": "no-referrer"}


def parse_address(text: str | int) -> tuple[str, int]:
    """``PORT``, ``:PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); host defaults to
    127.0.0.1, port 0 means any free port."""
    s = str(text).strip()
    host, sep, port = s.rpartition(":")
    if not sep:
        host, port = "", s
    host = host.strip("[]") if host.startswith("[") else host
    if ":" in host and not s.startswith("["):
        raise EdgesegError(f"--serve {s}: write an IPv6 address in brackets, e.g. [::1]:8080")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise EdgesegError(f"--serve {s}: give [HOST:]PORT with a port number 0-65535 (0 = any free port), "
                           "e.g. 8080 or 0.0.0.0:8080")
    return host or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    """True for addresses that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _NewestFrame:
    """The newest frame and its JPEG, encoded on demand at most once per frame."""

    def __init__(self, quality: int) -> None:
        self.quality = quality
        self.cond = threading.Condition()
        self.seq = 0
        self.encoded = 0  # frames encoded so far
        self._image: np.ndarray | None = None
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._encode_lock = threading.Lock()

    def put(self, image: np.ndarray) -> None:
        with self.cond:
            self._image = image
            self.seq += 1
            self.cond.notify_all()

    def wait_newer(self, seen: int, timeout: float) -> int:
        """The newest sequence number once it is past ``seen`` (``seen`` again after ``timeout``)."""
        with self.cond:
            self.cond.wait_for(lambda: self.seq != seen, timeout)
            return self.seq

    def wake_all(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def jpeg(self) -> tuple[int, bytes]:
        """(sequence number, JPEG bytes) of the newest frame; (0, b"") before the first one."""
        import cv2

        with self._encode_lock:
            with self.cond:
                seq, image = self.seq, self._image
            if image is None or self._jpeg[0] == seq:
                return self._jpeg
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if ok:
                self._jpeg = (seq, buf.tobytes())
                self.encoded += 1
            return self._jpeg


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sink: "WebSink") -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sink = sink
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # HTTPServer's would ask DNS for the host's name
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.sink._admit(request):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.sink._release(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a viewer that went away mid-response is not an error of the run


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    timeout = CLIENT_TIMEOUT
    server_version = "edgeseg"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        pass

    def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
        sink = self.server.sink
        path, _, query = self.path.partition("?")
        refusal = sink._refusal(self.headers, parse_qs(query))
        if refusal is not None:
            self._plain(*refusal)
            return
        route = _ROUTES.get(path)
        if route is None:
            self._plain(HTTPStatus.NOT_FOUND, "not found: this server has /, /stream.mjpg, /frame.jpg, "
                                              "/stats.json and /events")
            return
        route(self, sink)

    # ---------------------------------------------------------------- responses
    def _start(self, status: int, content_type: str, length: int | None = None,
               extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in {**_SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()

    def _plain(self, status: int, text: str, extra: dict[str, str] | None = None) -> None:
        body = (text + "\n").encode()
        self._start(status, "text/plain; charset=utf-8", len(body), extra)
        self.wfile.write(body)

    def _page(self, sink: "WebSink") -> None:
        nonce = secrets.token_urlsafe(12)
        body = sink._page_template.replace("{{nonce}}", nonce).encode()
        csp = (f"default-src 'none'; img-src 'self'; connect-src 'self'; style-src 'nonce-{nonce}'; "
               f"script-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        self._start(HTTPStatus.OK, "text/html; charset=utf-8", len(body), {"Content-Security-Policy": csp})
        self.wfile.write(body)

    def _frame(self, sink: "WebSink") -> None:
        seq, data = sink._frames.jpeg()
        if not seq:
            self._plain(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet", {"Retry-After": "1"})
            return
        self._start(HTTPStatus.OK, "image/jpeg", len(data))
        self.wfile.write(data)

    def _stats(self, sink: "WebSink") -> None:
        body = json.dumps(sink.stats()).encode()
        self._start(HTTPStatus.OK, "application/json", len(body))
        self.wfile.write(body)

    def _stream(self, sink: "WebSink") -> None:
        with sink._viewer(self) as admitted:
            if not admitted:
                return
            self._start(HTTPStatus.OK, f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            frames, seen = sink._frames, 0
            while not sink.closed:
                newest = frames.wait_newer(seen, STATS_PERIOD)
                if newest == seen:
                    continue
                seq, data = frames.jpeg()
                if seen and seq > seen + 1:
                    sink._count_skipped(seq - seen - 1)
                seen = seq
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                self.wfile.write(head.encode() + data + b"\r\n")
                sink._count_sent()

    def _events(self, sink: "WebSink") -> None:
        with sink._viewer(self) as admitted:
            if not admitted:
                return
            self._start(HTTPStatus.OK, "text/event-stream")
            while not sink.closed:
                self.wfile.write(f"data: {json.dumps(sink.stats())}\n\n".encode())
                self.wfile.flush()
                sink._closing.wait(STATS_PERIOD)


_ROUTES: dict[str, Callable[[_Handler, "WebSink"], None]] = {
    "/": _Handler._page, "/stream.mjpg": _Handler._stream, "/frame.jpg": _Handler._frame,
    "/stats.json": _Handler._stats, "/events": _Handler._events,
}


class _ViewerSlot:
    def __init__(self, sink: "WebSink", handler: _Handler) -> None:
        self.sink, self.handler, self.admitted = sink, handler, False

    def __enter__(self) -> bool:
        with self.sink._lock:
            self.admitted = self.sink.viewers < self.sink.max_clients
            if self.admitted:
                self.sink.viewers += 1
        if not self.admitted:
            self.handler._plain(HTTPStatus.SERVICE_UNAVAILABLE, f"too many viewers (at most "
                                f"{self.sink.max_clients}); close another view and retry", {"Retry-After": "5"})
        return self.admitted

    def __exit__(self, *exc: object) -> None:
        if self.admitted:
            with self.sink._lock:
                self.sink.viewers -= 1


class WebSink(Sink):
    """Serve the pipeline's overlay and live stats over HTTP while it runs.

    Args:
        address: ``PORT``, ``HOST:PORT`` or ``(host, port)``; the host defaults to 127.0.0.1 and
            port 0 picks a free port (read :attr:`port`).
        token: access token. Required (generated when not given: read :attr:`token` or
            :attr:`url`) when the host is not a loopback address; checked on every request as
            ``?token=`` or ``Authorization: Bearer``.
        max_clients: viewers streaming at once (MJPEG and stats streams); more are refused (503).
        quality: JPEG quality of the stream.
        info: facts shown on the page and in the stats (e.g. ``{"model": ..., "source": ...}``).

    The server starts listening here (a port in use raises :class:`EdgesegError` now) and stops
    when the pipeline closes its sinks.
    """

    needs_image = True

    def __init__(self, address: str | int | tuple[str, int] = "127.0.0.1:8080", *, token: str | None = None,
                 max_clients: int = DEFAULT_MAX_CLIENTS, quality: int = defaults.WEB_JPEG_QUALITY,
                 info: dict[str, Any] | None = None) -> None:
        host, port = address if isinstance(address, tuple) else parse_address(address)
        if max_clients < 1:
            raise EdgesegError(f"max_clients must be >= 1, got {max_clients}")
        if token is not None and len(token) < 8:
            raise EdgesegError("the access token is too short: give at least 8 characters (or none, to have "
                               "one generated)")
        self.host = host
        self.token = token if token is not None else (None if is_loopback(host) else secrets.token_urlsafe(18))
        self.max_clients = max_clients
        self.info: dict[str, Any] = dict(info or {})
        self.viewers = 0
        self.frames = 0  # frames handed over by the pipeline
        self.sent = 0  # MJPEG parts written, all viewers together
        self.skipped = 0  # frames viewers skipped because a newer one was there when they were ready
        self._frames = _NewestFrame(quality)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._connections: set[Any] = set()
        self._max_connections = 2 * max_clients + 8
        self._recent: deque[tuple[float, dict[str, float], float]] = deque(maxlen=RECENT_FRAMES)
        self._last: dict[str, Any] = {}
        self._run_stats: Any = None
        self._stats_cache: tuple[float, dict[str, Any]] = (0.0, {})
        self._t0 = time.monotonic()
        self._page_template = PAGE.read_text(encoding="utf-8")
        try:
            self._server = _Server((host, port), self)
        except OSError as e:
            raise EdgesegError(self._bind_error(host, port, e)) from None
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="edgeseg-web", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ facts
    @property
    def url(self) -> str:
        """Where to watch (with the token when one is needed). For a wildcard address the
        machine's host name stands in for the host."""
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    @property
    def encoded(self) -> int:
        """Frames encoded to JPEG so far (0 while nobody watched)."""
        return self._frames.encoded

    def describe(self) -> str:
        return f"web view {self.url.split('?')[0]}" + (" (token)" if self.token else "")  # no secret in summaries

    # ------------------------------------------------------------------ pipeline side
    def put(self, result: "StreamResult") -> None:
        image = result.vis if result.vis is not None else result.frame
        self._frames.put(image)
        now = time.monotonic()
        with self._lock:
            self.frames += 1
            self._recent.append((now, dict(result.timings), float(result.age_ms)))
            self._last = {"index": int(result.index), "name": result.name, "age_ms": round(result.age_ms, 2),
                          "size": [int(image.shape[1]), int(image.shape[0])]}
            self._run_stats = result.stats
            if "model" not in self.info and getattr(result, "meta", None) is not None:
                self.info["model"] = f"{result.meta.arch} ({result.meta.task}, {len(result.meta.classes)} classes)"

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        self._frames.wake_all()
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for sock in connections:  # unblock viewers stuck writing to a stalled client
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._thread.join(timeout=5.0)
        deadline = time.monotonic() + 5.0
        while self._connections and time.monotonic() < deadline:
            time.sleep(0.01)

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict[str, Any]:
        """Live statistics: recent FPS, per-stage p50/p90/p99 over the last frames, frame age,
        drops and events of the run, the model and source, viewers. Cached for 0.2 s."""
        now = time.monotonic()
        cached_at, cached = self._stats_cache
        if cached and now - cached_at < 0.2:
            return cached
        with self._lock:
            recent = list(self._recent)
            last, frames, viewers, run = dict(self._last), self.frames, self.viewers, self._run_stats
            sent, skipped = self.sent, self.skipped
        stages: dict[str, dict[str, float]] = {}
        for key in dict.fromkeys(k for _, timings, _ in recent for k in timings):
            values = np.array([t[key] for _, t, _ in recent if key in t], dtype=np.float64)
            stages[key] = {f"p{p}": round(float(np.percentile(values, p)), 2) for p in (50, 90, 99)}
        if recent:
            ages = np.array([a for _, _, a in recent])
            stages["frame_age"] = {f"p{p}": round(float(np.percentile(ages, p)), 2) for p in (50, 90, 99)}
        window = [t for t, _, _ in recent if now - t <= 2.0]
        fps = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 and window[-1] > window[0] else 0.0
        out = {
            **self.info, "frames": frames, "fps": round(fps, 2), "last": last, "stages_ms": stages,
            "dropped": run.dropped if run is not None else {},
            "viewers": viewers, "jpeg_encoded": self.encoded, "parts_sent": sent, "parts_skipped": skipped,
            "uptime_s": round(now - self._t0, 1), "running": not self.closed,
        }
        self._stats_cache = (now, out)
        return out

    # ------------------------------------------------------------------ server side
    def _refusal(self, headers: Any, query: dict[str, list[str]]) -> tuple[int, str] | None:
        """Why a request is refused (status, text), or None to serve it."""
        if self.token is None:
            host = (headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            if not is_loopback(host):  # a page from elsewhere reaching us through DNS rebinding
                return HTTPStatus.FORBIDDEN, "forbidden: this view only answers requests addressed to this machine"
            return None
        given = query.get("token", [""])[-1]
        auth = headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return HTTPStatus.UNAUTHORIZED, "access token missing or wrong: open the URL that edgeseg printed"
        return None

    def _viewer(self, handler: _Handler) -> _ViewerSlot:
        return _ViewerSlot(self, handler)

    def _admit(self, sock: Any) -> bool:
        with self._lock:
            if self._closing.is_set() or len(self._connections) >= self._max_connections:
                return False
            self._connections.add(sock)
            return True

    def _release(self, sock: Any) -> None:
        with self._lock:
            self._connections.discard(sock)

    def _count_sent(self) -> None:
        with self._lock:
            self.sent += 1

    def _count_skipped(self, n: int) -> None:
        with self._lock:
            self.skipped += n

    @staticmethod
    def _bind_error(host: str, port: int, e: OSError) -> str:
        where = f"{host}:{port}"
        if e.errno == errno.EADDRINUSE:
            return (f"--serve {where}: the port is in use (another edgeseg run or server?); pick another port, "
                    "or --serve 0 for any free one")
        if e.errno == errno.EACCES:
            return f"--serve {where}: not allowed to listen on port {port} (ports below 1024 need root); use e.g. 8080"
        if e.errno == errno.EADDRNOTAVAIL or isinstance(e, socket.gaierror):
            return (f"--serve {where}: {host} is not an address of this machine; use 127.0.0.1 (this machine only) "
                    "or 0.0.0.0 (every network, with a token)")
        return f"--serve {where}: cannot listen there ({e.strerror or e})"
