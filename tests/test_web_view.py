"""The live web view (`--serve`, WebSink): a real server on 127.0.0.1, its MJPEG stream decoded by
OpenCV, a stalled viewer that cannot slow the pipeline, the access token, the fixed routes, and
the page in a real headless Chromium (screenshot kept in the test's tmp folder)."""
from __future__ import annotations

import base64
import http.client
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgeseg.errors import EdgesegError
from edgeseg.pipeline import IterableSource, Pipeline, WebSink
from edgeseg.pipeline.sinks.web import BOUNDARY, is_loopback, parse_address

ASSET = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "semantic_default.onnx"
pytestmark = pytest.mark.skipif(not ASSET.exists(), reason="no default model packaged in this tree")


@pytest.fixture(scope="module")
def predictor():
    from edgeseg.runtime import load

    return load(ASSET)


def _frames(n: int, size=(240, 320)) -> list[np.ndarray]:
    from edgeseg.data.synthetic import video_frame

    return [video_frame(t, size).image for t in range(n)]


def _live(fps: float = 15):
    """A live synthetic scene (the pipeline runs until stopped)."""
    from edgeseg.pipeline import SyntheticSource

    return SyntheticSource(size=(240, 320), fps=fps)


def _get(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0
         ) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def _mjpeg_parts(sock_file, count: int | None = None) -> list[bytes]:
    """Read JPEG parts from an open multipart/x-mixed-replace response body: ``count`` of them,
    or (None) all until the stream ends."""
    parts: list[bytes] = []
    while count is None or len(parts) < count:
        line = sock_file.readline()
        if not line:
            assert count is None, "stream ended early"
            break
        if line.strip() != f"--{BOUNDARY}".encode():
            continue
        headers = {}
        while (line := sock_file.readline().strip()):
            k, v = line.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        assert headers["content-type"] == "image/jpeg"
        data = sock_file.read(int(headers["content-length"]))
        if len(data) < int(headers["content-length"]):
            break  # cut off by the end of the run
        parts.append(data)
    return parts


def _wait(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_address_parsing_and_loopback_policy():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address(":0") == ("127.0.0.1", 0)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:8080") == ("::1", 8080)
    for bad in ("http", "host:", "1.2.3.4:70000", "::1:8080"):
        with pytest.raises(EdgesegError, match="--serve"):
            parse_address(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.4")


def test_mjpeg_stream_decodes_with_opencv_and_encodes_only_while_watched(predictor):
    import cv2

    sink = WebSink("127.0.0.1:0", info={"source": "test frames"})
    assert sink.token is None and sink.url == f"http://127.0.0.1:{sink.port}/"
    pipe = Pipeline(predictor, IterableSource(_frames(400), fps=60), [sink], realtime=True)
    pipe.start()
    try:
        _wait(lambda: sink.frames >= 20, what="20 frames")
        assert sink.encoded == 0  # nobody watched: no JPEG was made
        cap = cv2.VideoCapture(f"http://127.0.0.1:{sink.port}/stream.mjpg", cv2.CAP_FFMPEG,
                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 10000])
        try:
            assert cap.isOpened(), "OpenCV could not open the MJPEG stream"
            decoded = [cap.read() for _ in range(5)]
        finally:
            cap.release()
        assert all(ok for ok, _ in decoded)
        assert all(img.shape == (240, 320, 3) and img.std() > 10 for _, img in decoded)
        status, headers, body = _get(sink.port, "/frame.jpg")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        snap = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert snap.shape == (240, 320, 3)
        status, _, body = _get(sink.port, "/stats.json")
        stats = json.loads(body)
        assert status == 200 and stats["source"] == "test frames" and "liteseg" in stats["model"]
        assert stats["frames"] >= 20 and stats["fps"] > 0 and stats["running"] is True
        assert {"p50", "p90", "p99"} <= set(stats["stages_ms"]["infer"]) and "frame_age" in stats["stages_ms"]
        assert sink.encoded <= sink.frames  # at most once per frame, however many viewers
    finally:
        pipe.stop()
        pipe.join(timeout=30)
    assert not sink._thread.is_alive()  # the server ended with the run
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", sink.port), timeout=2).close()


def test_stalled_viewer_does_not_hold_up_the_pipeline(predictor):
    """A viewer that never reads gets a few frames at most and skips the rest; the pipeline
    processes every frame of a finite source (nothing dropped or queued for the viewer)."""
    n = 150
    frames = [np.ascontiguousarray(np.random.default_rng(i).integers(0, 255, (480, 640, 3), np.uint8))
              for i in range(n)]  # noise: large JPEGs, so a stalled socket fills up quickly
    sink = WebSink("127.0.0.1:0", quality=95)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", sink.port))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    reader = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=20)
    reader.request("GET", "/stream.mjpg")
    reply = reader.getresponse()
    _wait(lambda: sink.viewers == 2, what="both viewers")
    got: list[bytes] = []
    reading = threading.Thread(target=lambda: got.extend(_mjpeg_parts(reply)))  # a viewer that keeps up
    reading.start()
    pipe = Pipeline(predictor, IterableSource(frames), [sink])
    try:
        pipe.start()
        assert pipe.join(timeout=120), "the pipeline did not finish"
    finally:
        pipe.stop()
        reading.join(timeout=30)
        reader.close()
    summary = pipe.summary()
    assert summary["frames"] == n and sink.frames == n and summary["dropped"] == {}
    stalled.settimeout(10)
    buffered = b""
    while chunk := stalled.recv(1 << 20):  # everything the stalled viewer was ever sent
        buffered += chunk
    stalled.close()
    sent_to_stalled = buffered.count(f"--{BOUNDARY}\r\n".encode())
    assert 0 < sent_to_stalled < len(got) <= n  # it was sent a few frames, the reading viewer many
    assert sink.encoded <= n


def test_token_is_required_on_every_route_when_set(predictor):
    token = "correct-horse-battery"
    sink = WebSink("127.0.0.1:0", token=token)
    pipe = Pipeline(predictor, _live(), [sink])
    try:
        pipe.start()
        _wait(lambda: sink.frames >= 2, what="frames")
        for path in ("/", "/stats.json", "/frame.jpg", "/stream.mjpg", "/events", "/nothing"):
            assert _get(sink.port, path)[0] == 401, path
            assert _get(sink.port, path + "?token=correct-horse-batterx")[0] == 401, path
            assert _get(sink.port, path, {"Authorization": "Bearer nope"})[0] == 401, path
        assert _get(sink.port, f"/stats.json?token={token}")[0] == 200
        assert _get(sink.port, "/frame.jpg", {"Authorization": f"Bearer {token}"})[0] == 200
        assert sink.url.endswith(f"/?token={token}") and token not in sink.describe()
    finally:
        pipe.stop()
        pipe.join(timeout=30)
    with pytest.raises(EdgesegError, match="too short"):
        WebSink("127.0.0.1:0", token="short")


def test_fixed_routes_host_check_client_bound_and_port_in_use(predictor):
    sink = WebSink("127.0.0.1:0", max_clients=1)
    pipe = Pipeline(predictor, _live(), [sink])
    try:
        pipe.start()
        _wait(lambda: sink.frames >= 2, what="frames")
        for path in ("/../../etc/passwd", "/web_view.html", "/index.html", "/stats.json/x", "/%2e%2e/x"):
            assert _get(sink.port, path)[0] == 404, path
        status, headers, body = _get(sink.port, "/")
        assert status == 200 and b"stream.mjpg" in body and "script-src 'nonce-" in headers["Content-Security-Policy"]
        assert "{{nonce}}" not in body.decode()
        # a page elsewhere that reaches 127.0.0.1 through DNS rebinding names another host
        assert _get(sink.port, "/stats.json", {"Host": "attacker.example:80"})[0] == 403
        first = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=10)
        first.request("GET", "/events")
        assert first.getresponse().status == 200
        _wait(lambda: sink.viewers == 1, what="one viewer")
        assert _get(sink.port, "/stream.mjpg")[0] == 503  # one viewer at most here
        first.close()
        with pytest.raises(EdgesegError, match="in use"):
            WebSink(f"127.0.0.1:{sink.port}")
    finally:
        pipe.stop()
        pipe.join(timeout=30)


def test_cli_serve_port_in_use_is_a_clean_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "edgeseg", "run", "--source", "synthetic", "--frames", "3",
                            "--serve", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert r.returncode == 2 and "the port is in use" in r.stderr and "Traceback" not in r.stderr, r.stderr


# ------------------------------------------------------------------------------------ browser
class _DevTools:
    """Chromium driven over --remote-debugging-pipe (DevTools protocol, NUL-separated JSON)."""

    def __init__(self, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        chromium = shutil.which("chromium") or "chromium"
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--disable-default-apps", "--mute-audio", "--disable-dev-shm-usage",
                "--window-size=1200,700",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no name resolves: no traffic out
                "about:blank"]
        # Chromium reads commands on fd 3 and writes replies to fd 4 (bash: dash takes one-digit fds only)
        redirect = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}'
        self.proc = subprocess.Popen([shutil.which("bash") or "/bin/bash", "-c", redirect, chromium, *args],
                                     pass_fds=(to_chrome_r, from_chrome_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._id = 0
        self._buf = b""

    def call(self, method: str, session: str | None = None, timeout: float = 30.0, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    assert "error" not in reply, reply["error"]
                    return reply["result"]
            left = deadline - time.monotonic()
            assert left > 0, f"no DevTools reply to {method}"
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                assert chunk, "Chromium closed the DevTools pipe"
                self._buf += chunk

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


_READ_PAGE = """(() => {
  const img = document.getElementById('view');
  let spread = 0;
  if (img.naturalWidth) {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    let lo = 255, hi = 0;
    for (let i = 0; i < px.length; i += 4 * 97) { lo = Math.min(lo, px[i + 1]); hi = Math.max(hi, px[i + 1]); }
    spread = hi - lo;
  }
  return JSON.stringify({width: img.naturalWidth, height: img.naturalHeight, spread,
    fps: document.getElementById('fps').textContent, frames: document.getElementById('frames').textContent,
    age: document.getElementById('age').textContent, model: document.getElementById('model').textContent,
    state: document.getElementById('state').textContent,
    stages: [...document.querySelectorAll('#stages tr')].map(r => r.cells[0].textContent)});
})()"""


def test_page_in_headless_chromium_shows_live_image_and_changing_stats(predictor, tmp_path):
    if shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: chromium is missing (.ci/run installs it)")
        pytest.skip("chromium not installed (Debian: chromium)")
    sink = WebSink("127.0.0.1:0", token="page-test-token", info={"source": "synthetic 240x320"})
    pipe = Pipeline(predictor, _live(), [sink])
    browser = None
    try:
        pipe.start()
        browser = _DevTools(tmp_path / "profile")
        target = browser.call("Target.createTarget", url=sink.url)["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

        def read() -> dict:
            value = browser.call("Runtime.evaluate", session, expression=_READ_PAGE, returnByValue=True)
            if "exceptionDetails" in value:  # the page has not loaded yet
                return {"width": 0, "fps": "-", "stages": []}
            return json.loads(value["result"]["value"])

        first: dict = {}

        def ready() -> bool:
            nonlocal first
            first = read()
            return first["width"] > 0 and first["fps"] not in ("-", "0.0") and bool(first["stages"])

        _wait(ready, timeout=60, what="the page to show the stream and stats")
        time.sleep(1.5)
        second = read()
        shot = browser.call("Page.captureScreenshot", session, format="png")
        (tmp_path / "web_view.png").write_bytes(base64.b64decode(shot["data"]))  # the test artefact
    finally:
        if browser is not None:
            browser.close()
        pipe.stop()
        pipe.join(timeout=30)
    assert (first["width"], first["height"]) == (320, 240) and first["spread"] > 20  # a real picture
    assert first["frames"] != second["frames"]  # the stats are live
    assert "liteseg" in first["model"] and first["state"] == "live" and first["age"].endswith("ms")
    assert {"pre", "infer", "post", "frame_age"} <= set(first["stages"])
    import cv2

    png = cv2.imread(str(tmp_path / "web_view.png"))
    assert png is not None and png.shape[0] > 300 and png.std() > 10
