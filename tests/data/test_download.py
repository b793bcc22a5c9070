"""The downloader against a real HTTP server on 127.0.0.1 serving generated dataset files."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading

import numpy as np
import pytest

from lbbench.data import download, real
from lbbench.data.dataset import DataError
from lbbench.data.download import fetch

FAST = {"backoff_s": 0.01, "timeout_s": 5.0}


# ---- generated files in the published formats -------------------------------------------------


def idx_gz(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def mnist_files(rng: np.random.Generator) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    a = {
        "train_x": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, 50),
        "test_x": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, 20),
    }
    files = {
        "train-images-idx3-ubyte.gz": idx_gz(a["train_x"], 0x803),
        "train-labels-idx1-ubyte.gz": idx_gz(a["train_y"], 0x801),
        "t10k-images-idx3-ubyte.gz": idx_gz(a["test_x"], 0x803),
        "t10k-labels-idx1-ubyte.gz": idx_gz(a["test_y"], 0x801),
    }
    return files, a


def cifar10_file(rng: np.random.Generator) -> tuple[bytes, dict[str, np.ndarray]]:
    a = {
        "train_x": rng.integers(0, 256, (50, 3072), dtype=np.uint8),
        "train_y": rng.integers(0, 10, 50),
        "test_x": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
        "test_y": rng.integers(0, 10, 20),
    }
    members = {
        f"cifar-10-batches-py/data_batch_{i + 1}": {
            b"data": a["train_x"][10 * i : 10 * i + 10],
            b"labels": a["train_y"][10 * i : 10 * i + 10].tolist(),
        }
        for i in range(5)
    }
    members["cifar-10-batches-py/test_batch"] = {b"data": a["test_x"], b"labels": a["test_y"].tolist()}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, obj in members.items():
            data = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), a


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


# ---- a tiny configurable file server ----------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.files` by base name; honours Range if `server.ranges`; may cut bodies short."""

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        body = srv.files.get(self.path.rsplit("/", 1)[-1])
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng and srv.ranges else 0
        if start >= len(body) and rng and srv.ranges:
            self.send_error(416, "Range Not Satisfiable")
            return
        self.send_response(206 if rng and srv.ranges else 200)
        if rng and srv.ranges:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if srv.cut_after is not None:
            payload = payload[: srv.cut_after]  # promise more than we send, then hang up
            self.close_connection = True
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.files, srv.requests, srv.ranges, srv.cut_after = {}, [], True, None
    srv.base_url = f"http://127.0.0.1:{srv.server_address[1]}/data/"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


# ---- through the loaders ----------------------------------------------------------------------


def test_mnist_download_verify_load_and_cache_reuse(server, tmp_path):
    files, a = mnist_files(np.random.default_rng(0))
    server.files.update(files)
    sums = {n: md5(d) for n, d in files.items()}
    ds = real.load_mnist(tmp_path, base_url=server.base_url, checksums=sums)
    assert len(server.requests) == 4
    np.testing.assert_array_equal(ds.y_train, a["train_y"])
    np.testing.assert_array_equal(ds.y_test, a["test_y"])
    t = a["train_x"] / 255.0
    want = (a["test_x"] / 255.0 - t.mean()) / t.std()
    np.testing.assert_allclose(ds.x_test[..., 0], want, rtol=1e-5, atol=1e-5)
    for name, data in files.items():
        assert (real.dataset_dir(tmp_path, "mnist") / name).read_bytes() == data
    assert not list(tmp_path.rglob("*.part"))
    again = real.load_mnist(tmp_path, base_url=server.base_url, checksums=sums)
    assert len(server.requests) == 4  # served from the cache
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_cifar10_download_through_env_var(server, tmp_path, monkeypatch):
    data, a = cifar10_file(np.random.default_rng(1))
    server.files["cifar-10-python.tar.gz"] = data
    monkeypatch.setenv("LBBENCH_CIFAR_URL", server.base_url.rstrip("/"))  # trailing slash optional
    ds = real.load_cifar10(tmp_path, checksums={"cifar-10-python.tar.gz": md5(data)})
    assert server.requests == [("/data/cifar-10-python.tar.gz", None)]
    assert ds.x_train.shape == (50, 32, 32, 3)
    np.testing.assert_array_equal(ds.y_train, a["train_y"])


def test_base_url_argument_beats_env_var(server, tmp_path, monkeypatch):
    files, _ = mnist_files(np.random.default_rng(2))
    server.files.update(files)
    monkeypatch.setenv("LBBENCH_FASHION_MNIST_URL", "http://127.0.0.1:9/nowhere/")
    real.load_fashion_mnist(tmp_path, base_url=server.base_url, checksums={n: md5(d) for n, d in files.items()})
    assert len(server.requests) == 4


def test_download_false_with_missing_file_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError) as info:
        real.load_cifar100(tmp_path, download=False)
    msg = str(info.value)
    assert "cifar-100-python.tar.gz" in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in msg
    assert str(tmp_path / "cifar100") in msg and "LBBENCH_CIFAR_URL" in msg


# ---- fetch() failure modes --------------------------------------------------------------------


def test_corrupted_byte_is_a_checksum_error_and_nothing_is_kept(server, tmp_path):
    good = b"\x00" * 1000 + b"payload" * 100
    server.files["f.bin"] = good[:500] + b"\xff" + good[501:]
    with pytest.raises(DataError) as info:
        fetch("f.bin", server.base_url, tmp_path, md5(good), **FAST)
    assert hashlib.md5(good).hexdigest() in str(info.value)
    assert hashlib.md5(server.files["f.bin"]).hexdigest() in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_404_is_a_clear_error_and_leaves_no_partial(server, tmp_path):
    with pytest.raises(DataError) as info:
        fetch("missing.gz", server.base_url, tmp_path, "md5:" + "0" * 32, **FAST)
    msg = str(info.value)
    assert "404" in msg and server.base_url + "missing.gz" in msg and str(tmp_path / "missing.gz") in msg
    assert len(server.requests) == 1  # a 404 is not retried
    assert list(tmp_path.iterdir()) == []


def test_server_hanging_up_mid_file_fails_after_retries(server, tmp_path):
    body = bytes(range(256)) * 40
    server.files["big.bin"], server.ranges, server.cut_after = body, False, 1000
    with pytest.raises(DataError) as info:
        fetch("big.bin", server.base_url, tmp_path, md5(body), retries=2, **FAST)
    assert "3 attempts" in str(info.value) and "big.bin" in str(info.value)
    assert len(server.requests) == 3
    assert not (tmp_path / "big.bin").exists()


def test_refused_connection_is_a_data_error(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(DataError, match="refused|attempts"):
        fetch("x.gz", f"http://127.0.0.1:{port}/", tmp_path, "md5:" + "0" * 32, retries=1, **FAST)
    assert not (tmp_path / "x.gz").exists()


def test_range_resume_of_a_partial_file(server, tmp_path):
    body = bytes(range(256)) * 40
    server.files["r.bin"] = body
    (tmp_path / "r.bin.part").write_bytes(body[:3000])
    path = fetch("r.bin", server.base_url, tmp_path, md5(body), **FAST)
    assert path.read_bytes() == body and not (tmp_path / "r.bin.part").exists()
    assert server.requests == [("/data/r.bin", "bytes=3000-")]


def test_resume_across_retries_completes_a_flaky_download(server, tmp_path):
    body = bytes(range(256)) * 40  # 10240 bytes, 4000 per connection: done on the third request
    server.files["r.bin"], server.cut_after = body, 4000
    assert fetch("r.bin", server.base_url, tmp_path, md5(body), retries=3, **FAST).read_bytes() == body
    assert [r for _, r in server.requests] == [None, "bytes=4000-", "bytes=8000-"]


def test_server_without_range_support_restarts(server, tmp_path):
    body = bytes(range(256)) * 40
    server.files["r.bin"], server.ranges = body, False
    (tmp_path / "r.bin.part").write_bytes(body[:3000])
    assert fetch("r.bin", server.base_url, tmp_path, md5(body), **FAST).read_bytes() == body


def test_stale_partial_from_another_file_is_discarded(server, tmp_path):
    body = bytes(range(256)) * 40
    server.files["r.bin"] = body
    (tmp_path / "r.bin.part").write_bytes(b"garbage" * 100)
    assert fetch("r.bin", server.base_url, tmp_path, md5(body), **FAST).read_bytes() == body
    assert [r for _, r in server.requests] == ["bytes=700-", None]


def test_progress_line_on_stderr(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(download, "PROGRESS_MIN_BYTES", 0)
    server.files["p.bin"] = b"p" * 5000
    fetch("p.bin", server.base_url, tmp_path, md5(b"p" * 5000), **FAST)
    assert "100.0%" in capsys.readouterr().err


def test_sha256_checksums_work_too(server, tmp_path):
    server.files["s.bin"] = b"sha" * 100
    digest = "sha256:" + hashlib.sha256(b"sha" * 100).hexdigest()
    assert fetch("s.bin", server.base_url, tmp_path, digest, **FAST).read_bytes() == b"sha" * 100


def test_corrupted_cache_is_downloaded_again(server, tmp_path):
    server.files["c.bin"] = b"good" * 100
    (tmp_path / "c.bin").write_bytes(b"bad")
    assert fetch("c.bin", server.base_url, tmp_path, md5(b"good" * 100), **FAST).read_bytes() == b"good" * 100
    assert len(server.requests) == 1


def test_fetch_with_download_off_names_file_url_and_place(tmp_path):
    with pytest.raises(DataError) as info:
        fetch("t.gz", "http://example.invalid/m/", tmp_path, "md5:" + "1" * 32, download=False)
    msg = str(info.value)
    assert "t.gz" in msg and "http://example.invalid/m/t.gz" in msg and str(tmp_path / "t.gz") in msg


def test_unusable_url_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not a usable URL"):
        fetch("x.gz", "nowhere/", tmp_path, "md5:" + "0" * 32, **FAST)


def test_checksum_formats():
    assert download.parse_checksum("ABCDEF" + "0" * 26) == ("md5", "abcdef" + "0" * 26)
    assert download.parse_checksum("sha256:" + "1" * 64) == ("sha256", "1" * 64)
    with pytest.raises(ValueError):
        download.parse_checksum("md5:123")
