"""MNIST-format data sets: the IDX reader, checksums, mirrors, the local cache and the validation split."""

import gzip
import hashlib
import math
import os
import struct
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import MnistlabError
from .files import atomic_path

# The four files every MNIST-format data set ships, by role.
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"): data is big-endian.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_BYTES = 1 << 31  # 2 GiB: far above any MNIST-format file
DOWNLOAD_TIMEOUT = 30  # seconds without an answer before a mirror counts as down
MAX_IDX_DIMS = 4  # images (N, H, W) and label tables (N, K) need 3 and 2
# A gzipped IDX file may not claim more than this many times its own size (past 64 MiB): real image
# files compress about 5:1, while a decompression bomb of zeros compresses about 1000:1.
MAX_GZIP_RATIO, RATIO_CHECKED_FROM = 100, 64 << 20


@dataclass(frozen=True)
class Checksum:
    """What a file is checked against: SHA-256 of its decompressed content where we know it,
    otherwise the MD5 of the .gz file as its publishers list it."""

    sha256: str | None = None
    gz_md5: str | None = None


@dataclass(frozen=True)
class Archive:
    """A zip file the data set's .gz files are published inside, checked by its MD5."""

    name: str  # file name on the mirrors, e.g. "gzip.zip"
    md5: str
    folder: str  # the folder holding the .gz files inside the zip, e.g. "gzip/"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    classes: tuple[str, ...]
    mirrors: tuple[str, ...]
    checksums: dict  # file name (without .gz) -> Checksum
    system_dirs: tuple[str, ...] = ()  # where an OS package may have installed the files
    files: dict = field(default_factory=lambda: dict(FILES))  # role -> file name (without .gz)
    label_column: int | None = None  # labels stored as a table (N, K): the class is this column
    archive: Archive | None = None  # the mirrors publish one zip rather than the four files
    transposed: bool = False  # images stored column by column: transposed on load


EMNIST_DIGITS_FILES = {
    "train_images": "emnist-digits-train-images-idx3-ubyte",
    "train_labels": "emnist-digits-train-labels-idx1-ubyte",
    "test_images": "emnist-digits-test-images-idx3-ubyte",
    "test_labels": "emnist-digits-test-labels-idx1-ubyte",
}

DATASETS = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            name="mnist",
            classes=tuple(str(d) for d in range(10)),
            mirrors=(
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
                "http://yann.lecun.com/exdb/mnist/",
            ),
            checksums={
                "train-images-idx3-ubyte": Checksum("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
                "train-labels-idx1-ubyte": Checksum("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
                "t10k-images-idx3-ubyte": Checksum("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
                "t10k-labels-idx1-ubyte": Checksum("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
            },
        ),
        # Content hashes computed from Debian's dataset-fashion-mnist (upstream git 55506a9).
        DatasetSpec(
            name="fashion-mnist",
            classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
            mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
            checksums={
                "train-images-idx3-ubyte": Checksum("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
                "train-labels-idx1-ubyte": Checksum("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
                "t10k-images-idx3-ubyte": Checksum("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
                "t10k-labels-idx1-ubyte": Checksum("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
            },
            system_dirs=("/usr/share/datasets/fashion-mnist",),
        ),
        # QMNIST (Yadav & Bottou 2019, "Cold Case: The Lost MNIST Digits"): 60,000 test digits, the
        # first 10,000 being MNIST's; labels are idx2-int tables whose column 0 is the class. MD5s of
        # the .gz files as torchvision lists them.
        DatasetSpec(
            name="qmnist",
            classes=tuple(str(d) for d in range(10)),
            mirrors=("https://raw.githubusercontent.com/facebookresearch/qmnist/master/",),
            files={"train_images": "qmnist-train-images-idx3-ubyte", "train_labels": "qmnist-train-labels-idx2-int",
                   "test_images": "qmnist-test-images-idx3-ubyte", "test_labels": "qmnist-test-labels-idx2-int"},
            checksums={
                "qmnist-train-images-idx3-ubyte": Checksum(gz_md5="ed72d4157d28c017586c42bc6afe6370"),
                "qmnist-train-labels-idx2-int": Checksum(gz_md5="0058f8dd561b90ffdd0f734c6a30e5e4"),
                "qmnist-test-images-idx3-ubyte": Checksum(gz_md5="1394631089c404de565df7b7aeaf9412"),
                "qmnist-test-labels-idx2-int": Checksum(gz_md5="5b5b05890a5e13444e108efe57b788aa"),
            },
            label_column=0,
        ),
        # EMNIST Digits (Cohen et al. 2017): 240,000 training and 40,000 test digits, published only
        # inside NIST's 535 MB gzip.zip of all EMNIST splits, whose MD5 (as torchvision lists it) is
        # the only checksum there is; the extracted files are checked by the IDX reader's structure.
        # Its images are stored transposed relative to MNIST's.
        DatasetSpec(
            name="emnist-digits",
            classes=tuple(str(d) for d in range(10)),
            mirrors=("https://biometrics.nist.gov/cs_links/EMNIST/", "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/"),
            files=EMNIST_DIGITS_FILES,
            checksums={name: Checksum() for name in EMNIST_DIGITS_FILES.values()},
            archive=Archive("gzip.zip", md5="58c8d27c78d21e728a6bc7b3cc06412e", folder="gzip/"),
            transposed=True,
        ),
        # Kuzushiji-MNIST (Clanuwat et al. 2018): its publishers list MD5s of the .gz files.
        DatasetSpec(
            name="kmnist",
            classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
            mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
            checksums={
                "train-images-idx3-ubyte": Checksum(gz_md5="bdb82020997e1d708af4cf47b453dcf7"),
                "train-labels-idx1-ubyte": Checksum(gz_md5="e144d726b3acfaa3e44228e80efcd344"),
                "t10k-images-idx3-ubyte": Checksum(gz_md5="5c965bf0a639b31b8f53240b1b52f4d7"),
                "t10k-labels-idx1-ubyte": Checksum(gz_md5="7320c461ea6c1c855c0b718fb2a4b134"),
            },
        ),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise MnistlabError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name]


# --- The IDX format -------------------------------------------------------------------------------


def _read_exact(f, n: int, what: str) -> bytes:
    buf = f.read(n)
    if len(buf) != n:
        raise MnistlabError(f"{what}: truncated IDX file (wanted {n} bytes, got {len(buf)})")
    return buf


def read_idx(path) -> tuple[np.ndarray, str]:
    """Read an IDX file, gzipped or raw. Returns the array and the SHA-256 of the decompressed bytes.

    The header says how many bytes follow, so we read exactly that much: a truncated file, trailing
    bytes or an absurd size are errors, and a gzip bomb is never decompressed past the header's size.
    """
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as raw:
            is_gzip = raw.read(2) == b"\x1f\x8b"
        f = gzip.open(path, "rb") if is_gzip else open(path, "rb")
        with f:
            header = _read_exact(f, 4, path.name)
            zero, type_code, ndim = struct.unpack(">HBB", header)
            if zero != 0 or type_code not in IDX_TYPES or ndim == 0:
                raise MnistlabError(f"{path.name}: not an IDX file (bad magic number {header.hex()})")
            if ndim > MAX_IDX_DIMS:
                raise MnistlabError(f"{path.name}: IDX header declares {ndim} dimensions; MNIST-format files have "
                                    f"at most {MAX_IDX_DIMS}")
            dims_bytes = _read_exact(f, 4 * ndim, path.name)
            dims = struct.unpack(f">{ndim}I", dims_bytes)
            dtype = np.dtype(IDX_TYPES[type_code])
            size = math.prod(dims) * dtype.itemsize  # Python integers: no overflow, however absurd the header
            if size > MAX_IDX_BYTES:
                raise MnistlabError(f"{path.name}: IDX header claims {size} bytes of data, refusing")
            packed = path.stat().st_size
            if is_gzip and size > RATIO_CHECKED_FROM and size > MAX_GZIP_RATIO * packed:
                raise MnistlabError(f"{path.name}: IDX header claims {size:,} bytes from a {packed:,}-byte gzip file "
                                    "(a decompression bomb?), refusing")
            body = _read_exact(f, size, path.name)
            if f.read(1):
                raise MnistlabError(f"{path.name}: wrong size, data continues past the {dims} the header declares")
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        if isinstance(e, FileNotFoundError):
            raise MnistlabError(f"{path}: no such file") from None
        raise MnistlabError(f"{path.name}: cannot read ({e})") from None
    for part in (header, dims_bytes, body):
        digest.update(part)
    array = np.frombuffer(body, dtype=dtype).reshape(dims)
    return array.astype(dtype.newbyteorder("=")), digest.hexdigest()


def md5_file(path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_md5(path, md5: str):
    if (got := md5_file(path)) != md5:
        raise MnistlabError(f"{path}: checksum mismatch, MD5 of file is {got}, expected {md5}")


def verify(path, checksum: Checksum) -> np.ndarray:
    """Read an IDX file and check it; a mismatch names the file and both hashes."""
    array, sha256 = read_idx(path)
    if checksum.sha256 and sha256 != checksum.sha256:
        raise MnistlabError(f"{path}: checksum mismatch, SHA-256 of content is {sha256}, expected {checksum.sha256}")
    if checksum.gz_md5:
        _check_md5(path, checksum.gz_md5)
    return array


# --- Finding and downloading the files ------------------------------------------------------------


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnistlab"


def resolve_data_dir(spec: DatasetSpec, data_dir=None) -> Path:
    """Where a data set's files live: --data-dir, else $MNISTLAB_DATA, else an OS package's folder,
    else the user cache (~/.cache/mnistlab/NAME)."""
    if data_dir or os.environ.get("MNISTLAB_DATA"):
        return Path(data_dir or os.environ["MNISTLAB_DATA"]).expanduser()
    for d in spec.system_dirs:
        if (Path(d) / (spec.files["train_images"] + ".gz")).exists():
            return Path(d)
    return default_cache_dir() / spec.name


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.exists():
            return candidate
    return None


def download(name: str, checksum: Checksum, mirrors, directory: Path, progress: bool = True) -> Path:
    """Fetch the IDX file `name`.gz from the first mirror that has it right; see download_file."""
    return download_file(f"{name}.gz", mirrors, directory, lambda path: verify(path, checksum), progress=progress)


def download_file(filename: str, mirrors, directory: Path, check, progress: bool = True) -> Path:
    """Fetch `filename` from each mirror in turn into `directory`; `check(path)` raises MnistlabError
    for a wrong file.

    Each attempt streams into a temporary file beside the target; only a file that passes `check` is
    renamed into place, so an interrupted or corrupt download leaves nothing behind.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    target = directory / filename
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + f"/{filename}"
        try:
            with atomic_path(target) as tmp:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, open(tmp, "wb") as out:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                                  TransferSpeedColumn(), transient=True, disable=not progress) as bar:
                        task = bar.add_task(filename, total=total)
                        received = 0
                        for chunk in iter(lambda: response.read(1 << 16), b""):
                            out.write(chunk)
                            received += len(chunk)
                            bar.advance(task, len(chunk))
                    if total and received < total:
                        raise OSError(f"connection closed after {received} of {total} bytes")
                check(tmp)
            return target
        except MnistlabError as e:
            failures.append(f"{url}: {str(e).split(': ', 1)[-1]}")
        except (OSError, ValueError) as e:  # URLError, timeouts, IncompleteRead, refused connections
            failures.append(f"{url}: {getattr(e, 'reason', None) or e}")
    raise MnistlabError(f"could not download {filename} from any mirror: " + "; ".join(failures))


def extract(spec: DatasetSpec, directory: Path, progress: bool = True):
    """Unpack the data set's four .gz files from its archive into `directory`, fetching the archive
    first unless it is already there. An archive mnistlab downloaded is deleted once unpacked."""
    archive = spec.archive
    path = directory / archive.name
    downloaded = not path.exists()
    if downloaded:
        download_file(archive.name, spec.mirrors, directory, lambda p: _check_md5(p, archive.md5), progress=progress)
    else:
        _check_md5(path, archive.md5)
    try:
        with zipfile.ZipFile(path) as z:
            for name in spec.files.values():
                member = f"{archive.folder}{name}.gz"
                with z.open(member) as src, atomic_path(directory / f"{name}.gz") as tmp, open(tmp, "wb") as out:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        out.write(chunk)
    except KeyError as e:
        raise MnistlabError(f"{path}: {e.args[0]}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise MnistlabError(f"{path}: cannot unpack ({e})") from None
    if downloaded:
        path.unlink()


def fetch(spec: DatasetSpec, data_dir=None, progress: bool = True) -> dict[str, Path]:
    """A local path for each of the data set's four files, downloading the missing ones."""
    directory = resolve_data_dir(spec, data_dir)
    paths = {}
    for role, name in spec.files.items():
        path = _find(directory, name)
        if path is None:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise MnistlabError(f"{name} not found in {directory} and cannot create it ({e.strerror})") from None
            if spec.archive:
                extract(spec, directory, progress)
                path = directory / f"{name}.gz"
            else:
                path = download(name, spec.checksums[name], spec.mirrors, directory, progress=progress)
        paths[role] = path
    return paths


# --- The data set as tensors ----------------------------------------------------------------------


@dataclass
class Data:
    """A whole MNIST-format data set in memory: images uint8 (N, 28, 28), labels int64 (N,)."""

    name: str
    classes: tuple[str, ...]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def load(name: str = "mnist", data_dir=None, progress: bool = True) -> Data:
    spec = get_spec(name)
    arrays = {}
    for role, path in fetch(spec, data_dir, progress).items():
        arrays[role] = verify(path, spec.checksums[path.name.removesuffix(".gz")])
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if spec.label_column is not None and labels.ndim == 2 and labels.shape[1] > spec.label_column:
            labels = arrays[f"{split}_labels"] = labels[:, spec.label_column]
        check_split(f"{name}: {split}", images, labels, len(spec.classes))
        if spec.transposed:
            arrays[f"{split}_images"] = np.ascontiguousarray(images.transpose(0, 2, 1))
    return Data(
        name=name,
        classes=spec.classes,
        train_images=torch.from_numpy(arrays["train_images"].astype(np.uint8)),
        train_labels=torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        test_images=torch.from_numpy(arrays["test_images"].astype(np.uint8)),
        test_labels=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
    )


def check_split(what: str, images: np.ndarray, labels: np.ndarray, num_classes: int):
    """What the rest of mnistlab relies on: some 28x28 images, and as many whole-number labels, each a
    class index."""
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise MnistlabError(f"{what} images have shape {images.shape}; expected (N, 28, 28)")
    if images.dtype != np.uint8:
        raise MnistlabError(f"{what} images are {images.dtype}; expected unsigned bytes (0-255)")
    if labels.ndim != 1 or len(images) != len(labels):
        raise MnistlabError(f"{what} images {images.shape} do not match labels {labels.shape}")
    if len(labels) == 0:
        raise MnistlabError(f"{what} split has no images")
    if labels.dtype.kind not in "iu":
        raise MnistlabError(f"{what} labels are {labels.dtype}; expected whole numbers")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise MnistlabError(f"{what} labels outside 0..{num_classes - 1}")


def split_indices(labels: torch.Tensor, val_fraction: float, seed: int, stratify: bool = False):
    """Hold a seeded validation split out of the training set. Returns (train_idx, val_idx).

    With `stratify`, each class gives the same fraction, so class balance is kept exactly.
    """
    if not 0 <= val_fraction < 1:
        raise MnistlabError(f"validation fraction must be in [0, 1), got {val_fraction}")
    g = torch.Generator().manual_seed(seed)
    if not stratify:
        perm = torch.randperm(len(labels), generator=g)
        n_val = round(val_fraction * len(labels))
        return perm[n_val:].sort().values, perm[:n_val].sort().values
    train, val = [], []
    for c in labels.unique():
        idx = (labels == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_val = round(val_fraction * len(idx))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values

