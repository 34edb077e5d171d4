"""minicnn.data.download against a loopback HTTP server (no test touches the internet)."""

import hashlib
import http.server
import io
import os
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from minicnn import data


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves `files`; mode "ok" honours Range, "norange" ignores it, "cut" stops half way."""

    files = {}
    mode = "ok"
    requests = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        Handler.requests.append((path, self.headers.get("Range")))
        body = Handler.files.get(path)
        if body is None:
            self.send_error(404, "not here")
            return
        rng = self.headers.get("Range")
        if Handler.mode == "cut":
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if rng and Handler.mode == "ok":
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(body):
                self.send_error(416, "range not satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def data_server():
    Handler.files, Handler.mode, Handler.requests = {}, "ok", []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def npz_bytes(n=40, seed=0):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    np.savez(
        buf,
        train_images=rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        train_labels=(np.arange(n) % 2).reshape(n, 1),
        val_images=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        val_labels=(np.arange(10) % 2).reshape(10, 1),
    )
    return buf.getvalue()


def zip_bytes(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def png_bytes(value):
    buf = io.BytesIO()
    Image.new("L", (6, 6), value).save(buf, format="PNG")
    return buf.getvalue()


def sha256(blob):
    return hashlib.sha256(blob).hexdigest()


def test_download_npz_verifies_and_is_not_fetched_twice(data_server, tmp_path):
    blob = npz_bytes()
    Handler.files["/p.npz"] = blob
    url = data_server + "/p.npz?download=1"
    path = data.download(
        "pneumoniamnist", tmp_path, size=64, url=url, sha256=sha256(blob), progress=False
    )
    assert path == os.path.join(tmp_path, "pneumoniamnist_64.npz")
    assert open(path, "rb").read() == blob
    assert not os.path.exists(path + ".part")
    ds = data.load(path, image_size=8, progress=False)
    assert (len(ds.train), len(ds.val), ds.class_names) == (40, 10, ["normal", "pneumonia"])
    again = data.download(
        "pneumoniamnist", tmp_path, size=64, url=url, sha256=sha256(blob), progress=False
    )
    assert again == path and len(Handler.requests) == 1
    md5 = hashlib.md5(blob).hexdigest()
    assert data.download("other", tmp_path / "m", url=url, md5=md5, progress=False).endswith(
        "p.npz"
    )


def test_wrong_checksum_leaves_no_file(data_server, tmp_path):
    Handler.files["/p.npz"] = npz_bytes()
    url = data_server + "/p.npz"
    with pytest.raises(ValueError, match=rf"sha256 of download of {url} is .* expected 0+;"):
        data.download("mine", tmp_path, url=url, sha256="0" * 64, progress=False)
    assert os.listdir(tmp_path) == []


def test_cut_connection_then_resume_with_range(data_server, tmp_path):
    blob = npz_bytes(n=200)
    Handler.files["/p.npz"] = blob
    url = data_server + "/p.npz"
    Handler.mode = "cut"
    with pytest.raises(ConnectionError, match=rf"{url} (stopped|was cut) at {len(blob) // 2}\b"):
        data.download("mine", tmp_path, url=url, sha256=sha256(blob), progress=False)
    assert os.listdir(tmp_path) == ["p.npz.part"]
    assert os.path.getsize(tmp_path / "p.npz.part") == len(blob) // 2
    Handler.mode = "ok"
    path = data.download("mine", tmp_path, url=url, sha256=sha256(blob), progress=False)
    assert open(path, "rb").read() == blob
    assert Handler.requests[-1] == ("/p.npz", f"bytes={len(blob) // 2}-")
    assert os.listdir(tmp_path) == ["p.npz"]


def test_cut_connection_then_restart_without_range(data_server, tmp_path):
    blob = npz_bytes(n=200)
    Handler.files["/p.npz"] = blob
    url = data_server + "/p.npz"
    Handler.mode = "cut"
    with pytest.raises(ConnectionError):
        data.download("mine", tmp_path, url=url, sha256=sha256(blob), progress=False)
    Handler.mode = "norange"
    path = data.download("mine", tmp_path, url=url, sha256=sha256(blob), progress=False)
    assert open(path, "rb").read() == blob
    assert Handler.requests[-1][1] == f"bytes={len(blob) // 2}-"  # asked, got the whole file


def test_zip_is_unpacked_once_and_loads(data_server, tmp_path):
    members = {
        f"myset/{cls}/{i}.png": png_bytes(40 + 100 * k)
        for k, cls in enumerate(["cat", "dog"])
        for i in range(5)
    }
    blob = zip_bytes(members)
    Handler.files["/files/myset.zip"] = blob
    url = data_server + "/files/myset.zip"
    folder = data.download("myset", tmp_path, url=url, sha256=sha256(blob), progress=False)
    assert folder == os.path.join(tmp_path, "myset")
    assert sorted(os.listdir(os.path.join(folder, "cat"))) == [f"{i}.png" for i in range(5)]
    ds = data.load(
        folder,
        image_size=4,
        workers=1,
        cache=False,
        progress=False,
        val_fraction=0.2,
        test_fraction=0.0,
    )
    assert (len(ds.train), len(ds.val)) == (8, 2)
    assert sorted(os.listdir(tmp_path)) == ["myset", "myset.zip"]
    again = data.download("myset", tmp_path, url=url, sha256=sha256(blob), progress=False)
    assert again == folder and len(Handler.requests) == 1


def test_zip_path_traversal_is_refused(data_server, tmp_path):
    blob = zip_bytes({"ok/a.txt": b"fine", "../evil.txt": b"gotcha"})
    Handler.files["/bad.zip"] = blob
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match=r"'\.\./evil\.txt' would be written outside"):
        data.download(
            "bad", dest, url=data_server + "/bad.zip", sha256=sha256(blob), progress=False
        )
    assert not (tmp_path / "evil.txt").exists()


def test_download_errors_name_the_problem(data_server, tmp_path):
    with pytest.raises(RuntimeError, match=rf"{data_server}/missing.npz failed: HTTP 404"):
        data.download("x", tmp_path, url=data_server + "/missing.npz", progress=False)
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        data.download("nope", tmp_path)
    with pytest.raises(ValueError, match=r"sizes \[28, 64, 128, 224\], not 32"):
        data.download("pneumoniamnist", tmp_path, size=32)
    assert os.listdir(tmp_path) == []


def test_pinned_sources():
    from minicnn.data.downloading import SOURCES

    url, name, (algo, digest) = SOURCES["pneumoniamnist"][64]
    assert url.endswith("pneumoniamnist_64.npz?download=1") and name == "pneumoniamnist_64.npz"
    assert algo == "md5" and len(digest) == 32
    url, name, (algo, digest) = SOURCES["tiny-imagenet"][None]
    assert url == "http://cs231n.stanford.edu/tiny-imagenet-200.zip" and algo == "md5"
