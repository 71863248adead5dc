"""The IDX reader, checksums, downloads from mirrors, and the validation split."""

import gzip
import hashlib
import http.server
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from mnistlab import data
from mnistlab.errors import MnistlabError


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = struct.pack(">HBB", 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(data.IDX_TYPES[type_code]).tobytes()


def test_reads_real_mnist(mnist_dir):
    images, sha = data.read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert sha == data.DATASETS["mnist"].checksums["t10k-images-idx3-ubyte"].sha256
    labels, _ = data.read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the seeds print these


def test_load_gives_tensors(mnist):
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_labels.shape == (10000,) and mnist.test_labels.dtype == torch.int64
    # Seed 001's per-class counts of the training set.
    assert torch.bincount(mnist.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.mark.parametrize("dtype_code", [0x08, 0x0B, 0x0D])
def test_reads_raw_and_gzip_of_each_type(tmp_path, dtype_code):
    array = np.arange(24).reshape(2, 3, 4)
    raw = idx_bytes(array, dtype_code)
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    for name in ("a", "a.gz"):
        got, sha = data.read_idx(tmp_path / name)
        assert got.tolist() == array.tolist()
        assert sha == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b"\x01\x02" + b[2:], "bad magic"),
    (lambda b: b[:2] + b"\x42" + b[3:], "bad magic"),  # unknown type code
    (lambda b: b[:-5], "truncated"),
    (lambda b: b[:6], "truncated"),  # cut inside the dimensions
    (lambda b: b + b"\x00\x00", "wrong size"),
    (lambda b: b[:4] + struct.pack(">3I", 60000, 28, 280000) + b[16:], "refusing"),  # absurd size
])
def test_malformed_idx_is_a_clear_error(tmp_path, mangle, message):
    raw = idx_bytes(np.zeros((5, 28, 28), np.uint8))
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(mangle(raw))
    with pytest.raises(MnistlabError, match=message):
        data.read_idx(path)


def test_truncated_gzip_is_a_clear_error(mnist_dir, tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes((mnist_dir / path.name).read_bytes()[:2000])
    with pytest.raises(MnistlabError, match="t10k-labels-idx1-ubyte.gz"):
        data.read_idx(path)


def test_checksum_mismatch_names_file_and_both_hashes(tmp_path):
    raw = idx_bytes(np.zeros(10, np.uint8), 0x08)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(raw)
    expected = data.DATASETS["mnist"].checksums["t10k-labels-idx1-ubyte"]
    with pytest.raises(MnistlabError) as e:
        data.verify(path, expected)
    assert str(path) in str(e.value)
    assert expected.sha256 in str(e.value) and hashlib.sha256(raw).hexdigest() in str(e.value)


def test_wrong_dataset_in_data_dir_is_detected(mnist_dir):
    with pytest.raises(MnistlabError, match="checksum mismatch"):
        data.load("fashion-mnist", mnist_dir, progress=False)


def test_unknown_dataset():
    with pytest.raises(MnistlabError, match="unknown data set 'cifar'"):
        data.load("cifar")


def test_data_dir_from_environment(monkeypatch, mnist_dir):
    monkeypatch.setenv("MNISTLAB_DATA", str(mnist_dir))
    assert data.resolve_data_dir(data.DATASETS["mnist"]) == mnist_dir
    monkeypatch.delenv("MNISTLAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere")
    assert data.resolve_data_dir(data.DATASETS["mnist"]) == Path("/somewhere/mnistlab/mnist")


# --- Downloads from a real local HTTP server ------------------------------------------------------


class Mirror(http.server.BaseHTTPRequestHandler):
    """Serves `files` (path -> bytes); with `cut` it announces the whole file but closes the
    connection halfway through, as a dropped download does."""

    files: dict = {}
    cut = False

    def do_GET(self):
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 2] if self.cut else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(files: dict, cut: bool = False) -> str:
        handler = type("Handler", (Mirror,), {"files": files, "cut": cut})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/mnist/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


NAME = "t10k-labels-idx1-ubyte"


def test_download_verifies_and_places_file(serve, mnist_dir, tmp_path):
    good = (mnist_dir / f"{NAME}.gz").read_bytes()
    url = serve({f"/mnist/{NAME}.gz": good})
    checksum = data.DATASETS["mnist"].checksums[NAME]
    path = data.download(NAME, checksum, [url], tmp_path, progress=False)
    assert path == tmp_path / f"{NAME}.gz" and path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == [f"{NAME}.gz"]


def test_download_falls_back_to_next_mirror(serve, mnist_dir, tmp_path):
    good = (mnist_dir / f"{NAME}.gz").read_bytes()
    broken = serve({})  # 404 for everything
    working = serve({f"/mnist/{NAME}.gz": good})
    checksum = data.DATASETS["mnist"].checksums[NAME]
    assert data.download(NAME, checksum, [broken, working], tmp_path, progress=False).read_bytes() == good


def test_file_url_mirror(mnist_dir, tmp_path):
    checksum = data.DATASETS["mnist"].checksums[NAME]
    path = data.download(NAME, checksum, [mnist_dir.as_uri()], tmp_path, progress=False)
    assert path.exists()


def test_corrupt_download_leaves_nothing(serve, mnist_dir, tmp_path):
    bad = gzip.compress(idx_bytes(np.zeros(10000, np.uint8)))  # valid IDX, wrong content
    url = serve({f"/mnist/{NAME}.gz": bad})
    checksum = data.DATASETS["mnist"].checksums[NAME]
    with pytest.raises(MnistlabError) as e:
        data.download(NAME, checksum, [url], tmp_path, progress=False)
    assert checksum.sha256 in str(e.value) and NAME in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_leaves_nothing(serve, mnist_dir, tmp_path):
    good = (mnist_dir / f"{NAME}.gz").read_bytes()
    url = serve({f"/mnist/{NAME}.gz": good}, cut=True)
    with pytest.raises(MnistlabError, match="connection closed after"):
        data.download(NAME, data.DATASETS["mnist"].checksums[NAME], [url], tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_load_downloads_missing_files_into_data_dir(serve, mnist_dir, tmp_path, monkeypatch):
    files = {f"/mnist/{p.name}": p.read_bytes() for p in mnist_dir.glob("*.gz")}
    spec = data.DATASETS["mnist"]
    monkeypatch.setitem(data.DATASETS, "mnist", data.DatasetSpec(
        spec.name, spec.classes, (serve(files),), spec.checksums))
    loaded = data.load("mnist", tmp_path / "cache", progress=False)
    assert loaded.test_images.shape == (10000, 28, 28)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(p.name for p in mnist_dir.glob("*.gz"))


# --- The validation split --------------------------------------------------------------------------


def test_split_is_seeded_disjoint_and_complete(mnist):
    labels = mnist.train_labels
    train, val = data.split_indices(labels, 0.1, seed=3)
    assert len(val) == 6000 and len(train) == 54000
    assert len(set(train.tolist()) | set(val.tolist())) == 60000
    again, val_again = data.split_indices(labels, 0.1, seed=3)
    assert torch.equal(val, val_again)
    assert not torch.equal(val, data.split_indices(labels, 0.1, seed=4)[1])


def test_stratified_split_keeps_class_balance(mnist):
    labels = mnist.train_labels
    _, val = data.split_indices(labels, 0.1, seed=0, stratify=True)
    per_class = torch.bincount(labels[val]).float()
    expected = torch.bincount(labels).float() * 0.1
    assert (per_class - expected).abs().max() <= 0.5


def test_qmnist_layout_file_names_and_label_column(mnist, tmp_path, monkeypatch):
    """QMNIST's own file names and its idx2-int label tables (class in column 0), built from real
    MNIST digits; the checksums are this test's own, since QMNIST itself cannot be downloaded here."""
    spec = data.DATASETS["qmnist"]
    sources = {"train_images": mnist.train_images[:300], "test_images": mnist.test_images[:100]}
    for split, n in (("train", 300), ("test", 100)):
        labels = getattr(mnist, f"{split}_labels")[:n].numpy()
        # QMNIST's columns: class, NIST writer id, ... ; only column 0 is the label
        sources[f"{split}_labels"] = np.stack([labels, np.arange(n) + 1000, np.full(n, 7)], 1)
    checksums = {}
    for role, name in spec.files.items():
        array = sources[role].numpy() if torch.is_tensor(sources[role]) else sources[role]
        blob = gzip.compress(idx_bytes(array, 0x08 if role.endswith("images") else 0x0C))
        (tmp_path / f"{name}.gz").write_bytes(blob)
        checksums[name] = data.Checksum(gz_md5=hashlib.md5(blob).hexdigest())
    monkeypatch.setitem(data.DATASETS, "qmnist", data.DatasetSpec(
        name="qmnist", classes=spec.classes, mirrors=(), files=spec.files, checksums=checksums, label_column=0))
    loaded = data.load("qmnist", tmp_path, progress=False)
    assert loaded.train_images.shape == (300, 28, 28) and loaded.test_labels.shape == (100,)
    assert torch.equal(loaded.train_labels, mnist.train_labels[:300])
    assert torch.equal(loaded.test_images, mnist.test_images[:100])


def test_qmnist_spec_names_its_published_checksums():
    spec = data.DATASETS["qmnist"]
    assert set(spec.files.values()) == set(spec.checksums) and spec.label_column == 0
    assert spec.checksums["qmnist-train-images-idx3-ubyte"].gz_md5 == "ed72d4157d28c017586c42bc6afe6370"


def _emnist_zip(mnist, path: Path) -> bytes:
    """A zip laid out like NIST's gzip.zip (gzip/emnist-digits-*.gz beside other splits' files), holding
    real MNIST digits stored transposed, as EMNIST stores its images."""
    import zipfile

    spec = data.DATASETS["emnist-digits"]
    arrays = {"train_images": mnist.train_images[:300].transpose(1, 2), "train_labels": mnist.train_labels[:300],
              "test_images": mnist.test_images[:100].transpose(1, 2), "test_labels": mnist.test_labels[:100]}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("gzip/emnist-letters-mapping.txt", "1 65 97\n")
        for role, name in spec.files.items():
            z.writestr(f"gzip/{name}.gz", gzip.compress(idx_bytes(arrays[role].numpy().astype(np.uint8))))
    return path.read_bytes()


def test_emnist_digits_come_from_the_archive_and_are_transposed_back(serve, mnist, tmp_path, monkeypatch):
    blob = _emnist_zip(mnist, tmp_path / "gzip.zip")
    spec = data.DATASETS["emnist-digits"]
    archive = data.Archive("gzip.zip", hashlib.md5(blob).hexdigest(), "gzip/")  # this test's archive, not NIST's
    broken = serve({"/mnist/gzip.zip": blob[:-100]})  # wrong MD5: the next mirror is tried
    monkeypatch.setitem(data.DATASETS, "emnist-digits", data.DatasetSpec(
        **{**spec.__dict__, "mirrors": (broken, serve({"/mnist/gzip.zip": blob})), "archive": archive}))
    cache = tmp_path / "cache"
    loaded = data.load("emnist-digits", cache, progress=False)
    assert torch.equal(loaded.train_images, mnist.train_images[:300])  # upright again
    assert torch.equal(loaded.test_labels, mnist.test_labels[:100])
    # the four files are unpacked and the downloaded 535 MB archive is not kept
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{n}.gz" for n in spec.files.values())
    assert data.load("emnist-digits", cache, progress=False).test_images.shape == (100, 28, 28)


def test_emnist_digits_from_an_archive_the_user_has(mnist, tmp_path, monkeypatch):
    blob = _emnist_zip(mnist, tmp_path / "gzip.zip")
    spec = data.DATASETS["emnist-digits"]
    archive = data.Archive("gzip.zip", hashlib.md5(blob).hexdigest(), "gzip/")
    monkeypatch.setitem(data.DATASETS, "emnist-digits", data.DatasetSpec(
        **{**spec.__dict__, "mirrors": (), "archive": archive}))
    assert data.load("emnist-digits", tmp_path, progress=False).train_images.shape == (300, 28, 28)
    assert (tmp_path / "gzip.zip").exists()  # the user's own file stays
    (tmp_path / "gzip.zip").write_bytes(blob[:1000])
    for p in tmp_path.glob("emnist-*"):
        p.unlink()
    with pytest.raises(MnistlabError, match="checksum mismatch, MD5"):
        data.load("emnist-digits", tmp_path, progress=False)


def test_emnist_digits_spec_names_nists_archive():
    spec = data.DATASETS["emnist-digits"]
    assert spec.archive.md5 == "58c8d27c78d21e728a6bc7b3cc06412e" and spec.transposed
    assert spec.mirrors[0] == "https://biometrics.nist.gov/cs_links/EMNIST/"


def test_gzip_bomb_is_refused_before_decompressing(tmp_path):
    """A header claiming 200 MB of pixels in a gzip file of a few hundred kB: refused from the sizes,
    without inflating the data."""
    path = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBBIII", 0, 0x08, 3, 255_102, 28, 28))  # 200 MB of images declared
        zeros = bytes(1 << 20)
        for _ in range(200):
            f.write(zeros)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(MnistlabError, match="decompression bomb"):
        data.read_idx(path)
