"""Data loaders: tiny files in each real format are written here, loaded, and corrupted."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from randhet.data import load_dataset
from randhet.errors import ConfigError, DataError

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def cfg(dataset: str, root: Path | str = "", **kw: object) -> dict:
    base = {"dataset": dataset, "root": str(root), "val_fraction": 0.2, "test_fraction": 0.2,
            "split_seed": 0, "limit": 0}
    return {**base, **kw}


# ------------------------------------------------------------------ digits


def test_digits_shape_and_splits():
    d = load_dataset(cfg("digits"))
    assert d.input_shape == (1, 8, 8) and d.x_train.dtype == np.float32
    assert d.y_train.dtype == np.int64 and d.num_classes == 10 and d.name == "digits"
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797
    assert len(d.x_test) == pytest.approx(0.2 * 1797, abs=10)
    for x in (d.x_train, d.x_val, d.x_test):
        assert x.min() >= 0 and x.max() <= 1
    small = load_dataset(cfg("digits", limit=7))
    assert [len(small.x_train), len(small.x_val), len(small.y_test)] == [7, 7, 7]
    np.testing.assert_array_equal(small.x_train, d.x_train[:7])


def test_unknown_dataset_lists_names():
    with pytest.raises(ConfigError, match="available: digits, mnist, fashion_mnist, cifar10"):
        load_dataset(cfg("imagenet"))


@pytest.mark.parametrize(
    "name, expected",
    [("mnist", "train-images-idx3-ubyte"), ("fashion_mnist", "t10k-labels-idx1-ubyte"),
     ("cifar10", "data_batch_1"), ("nmnist", "Train/")],
)
def test_empty_root_says_what_to_set(name, expected):
    with pytest.raises(ConfigError, match="data.root") as e:
        load_dataset(cfg(name))
    assert expected in str(e.value)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "nmnist"])
def test_missing_root_folder(tmp_path, name):
    with pytest.raises(ConfigError, match="is not a folder"):
        load_dataset(cfg(name, tmp_path / "nope"))


# ------------------------------------------------------------------ MNIST IDX


def idx_images(x: np.ndarray, magic: int = 2051) -> bytes:
    return struct.pack(">4I", magic, *x.shape) + x.astype(np.uint8).tobytes()


def idx_labels(y: np.ndarray, magic: int = 2049) -> bytes:
    return struct.pack(">2I", magic, len(y)) + y.astype(np.uint8).tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def mnist_arrays(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Image i has pixel [0, 0] = offset + i (its id) and pixel [27, 27] = 255; label id % 10."""
    x = np.zeros((n, 28, 28), np.uint8)
    ids = offset + np.arange(n)
    x[:, 0, 0], x[:, 27, 27] = ids, 255
    return x, ids % 10


def write_mnist(root: Path, gz: bool = False, n_train: int = 30, n_test: int = 10) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, n, offset in (("train", n_train, 0), ("test", n_test, 100)):
        x, y = mnist_arrays(n, offset)
        write(root / IDX_NAMES[split][0], idx_images(x), gz)
        write(root / IDX_NAMES[split][1], idx_labels(y), gz)
    return root


def ids(x: np.ndarray) -> np.ndarray:
    return np.rint(x[:, 0, 0, 0] * 255).astype(int)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_loads(tmp_path, gz, name):
    d = load_dataset(cfg(name, write_mnist(tmp_path, gz), val_fraction=0.2, test_fraction=0.5))
    assert d.name == name and d.num_classes == 10 and d.input_shape == (1, 28, 28)
    assert [len(d.x_train), len(d.x_val), len(d.x_test)] == [20, 10, 10]  # test_fraction unused
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.min() == 0.0 and x.max() == 1.0
        np.testing.assert_array_equal(ids(x) % 10, y)  # images stay with their labels
    assert sorted(ids(d.x_test)) == list(range(100, 110))  # the official test set
    assert sorted([*ids(d.x_train), *ids(d.x_val)]) == list(range(30))
    assert np.bincount(d.y_val, minlength=10).tolist() == [1] * 10  # stratified


def test_mnist_seeded_and_limit(tmp_path):
    root = write_mnist(tmp_path)
    a, b = load_dataset(cfg("mnist", root)), load_dataset(cfg("mnist", root))
    other = load_dataset(cfg("mnist", root, split_seed=1))
    np.testing.assert_array_equal(a.x_val, b.x_val)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert set(ids(a.x_val)) != set(ids(other.x_val))
    small = load_dataset(cfg("mnist", root, limit=4))
    assert [len(small.x_train), len(small.y_val), len(small.x_test)] == [4, 4, 4]
    np.testing.assert_array_equal(small.x_train, a.x_train[:4])
    np.testing.assert_array_equal(small.y_test, a.y_test[:4])


def test_mnist_missing_file(tmp_path):
    root = write_mnist(tmp_path)
    (root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ConfigError, match=r"missing t10k-labels-idx1-ubyte \(or .*\.gz\)"):
        load_dataset(cfg("mnist", root))


def corrupt_idx(root: Path, kind: str) -> tuple[str, str]:
    """Overwrite one file of a valid tree; returns (file name, expected message)."""
    img, lbl = IDX_NAMES["train"]
    x, y = mnist_arrays(30, 0)
    if kind == "image_magic":
        write(root / img, idx_images(x, magic=2049))
        return img, "magic number 2049, expected 2051"
    if kind == "label_magic":
        write(root / lbl, idx_labels(y, magic=2051))
        return lbl, "magic number 2051, expected 2049"
    if kind == "truncated":
        write(root / img, idx_images(x)[:-1])
        return img, "payload is 23519 bytes, header says 30x28x28 = 23520"
    if kind == "header":
        write(root / lbl, b"\x00\x00\x08")
        return lbl, "truncated IDX header"
    if kind == "label_range":
        write(root / lbl, idx_labels(np.r_[y[:-1], 10]))
        return lbl, "label 10 found, expected labels 0..9"
    if kind == "count":
        write(root / lbl, idx_labels(y[:-1]))
        return lbl, "29 labels for 30 images"
    if kind == "dims":
        write(root / img, idx_images(np.zeros((30, 27, 28))))
        return img, "images are 27x28, expected 28x28"
    (root / img).unlink()
    (root / f"{img}.gz").write_bytes(gzip.compress(idx_images(x))[:-20])  # truncated gzip
    return img + ".gz", "cannot read"


@pytest.mark.parametrize(
    "kind", ["image_magic", "label_magic", "truncated", "header", "label_range", "count", "dims",
             "gzip"],
)
def test_mnist_corrupt_is_refused(tmp_path, kind):
    root = write_mnist(tmp_path)
    name, message = corrupt_idx(root, kind)
    with pytest.raises(DataError) as e:
        load_dataset(cfg("mnist", root))
    text = str(e.value)
    assert name in text and message in text and "\n" not in text


# ------------------------------------------------------------------ CIFAR-10


def cifar_batch(n: int, offset: int) -> dict:
    """Image i: first R pixel = its id, first G pixel = 7, last B pixel = 255; label id % 10."""
    data = np.zeros((n, 3072), np.uint8)
    gid = offset + np.arange(n)
    data[:, 0], data[:, 1024], data[:, 3071] = gid, 7, 255
    return {b"batch_label": b"training batch", b"labels": [int(v) for v in gid % 10],
            b"data": data, b"filenames": [f"img_{i}.png".encode() for i in gid]}


def dump(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar(folder: Path, n: int = 20) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for b in range(1, 6):
        dump(folder / f"data_batch_{b}", cifar_batch(n, (b - 1) * n))
    dump(folder / "test_batch", cifar_batch(n, 200))


@pytest.mark.parametrize("sub", ["", "cifar-10-batches-py"])
def test_cifar_loads(tmp_path, sub):
    write_cifar(tmp_path / sub if sub else tmp_path)
    d = load_dataset(cfg("cifar10", tmp_path))
    assert d.input_shape == (3, 32, 32) and d.name == "cifar10"
    assert [len(d.x_train), len(d.x_val), len(d.x_test)] == [80, 20, 20]
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.min() == 0.0 and x.max() == 1.0
        got = np.rint(x * 255).astype(int)
        np.testing.assert_array_equal(got[:, 0, 0, 0] % 10, y)
        assert (got[:, 1, 0, 0] == 7).all() and (got[:, 2, 31, 31] == 255).all()
    assert sorted(np.rint(d.x_test[:, 0, 0, 0] * 255).astype(int)) == list(range(200, 220))
    small = load_dataset(cfg("cifar10", tmp_path, limit=3))
    assert [len(small.x_train), len(small.x_val), len(small.x_test)] == [3, 3, 3]


def py2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled as Python 2 wrote the real files: str as BINSTRING, no _codecs."""

    def s(b: bytes) -> bytes:
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b

    def i(v: int) -> bytes:
        return b"J" + struct.pack("<i", v)

    dtype = (b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R"
             + b"(" + i(3) + s(b"|") + b"NNN" + i(-1) + i(-1) + i(0) + b"tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + i(0) + b"\x85"
             + s(b"b") + b"\x87R(" + i(1) + i(data.shape[0]) + i(data.shape[1]) + b"\x86"
             + dtype + b"\x89" + s(data.tobytes()) + b"tb")
    items = (s(b"batch_label") + s(b"training batch 1 of 5") + s(b"labels")
             + b"](" + b"".join(i(v) for v in labels) + b"e" + s(b"data") + array)
    return b"\x80\x02}(" + items + b"u."


def test_cifar_reads_python2_pickles(tmp_path):
    write_cifar(tmp_path)
    batch = cifar_batch(20, 0)
    raw = py2_batch(batch[b"data"], batch[b"labels"])
    assert b"_codecs" not in raw
    plain = pickle.loads(raw, encoding="bytes")  # what an unrestricted load makes of it
    np.testing.assert_array_equal(plain[b"data"], batch[b"data"])
    (tmp_path / "data_batch_1").write_bytes(raw)
    d = load_dataset(cfg("cifar10", tmp_path, val_fraction=0.0))
    got = sorted(np.rint(d.x_train[:, 0, 0, 0] * 255).astype(int))
    assert got == list(range(100)) and len(d.x_val) == 0


class Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class EvilEval(Evil):
    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("evil", [Evil, EvilEval])
def test_cifar_malicious_pickle_runs_nothing(tmp_path, evil):
    write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    batch = cifar_batch(20, 0)
    dump(tmp_path / "data_batch_1", {**batch, b"batch_label": evil(marker)})
    with pytest.raises(DataError, match=r"data_batch_1: .*refused global (posix|__builtin__)\."):
        load_dataset(cfg("cifar10", tmp_path))
    assert not marker.exists()


def bad_batches():
    good = cifar_batch(20, 0)
    return {
        "float data": ({**good, b"data": good[b"data"].astype(np.float32)},
                       "'data' is float32 (20, 3072), expected a uint8 array [N, 3072]"),
        "wrong shape": ({**good, b"data": good[b"data"][:, :100]}, "expected a uint8 array"),
        "no data": ({b"labels": good[b"labels"]}, "'data' is NoneType"),
        "short labels": ({**good, b"labels": good[b"labels"][:-1]}, "list of 20 ints"),
        "str labels": ({**good, b"labels": ["a"] * 20}, "list of 20 ints"),
        "label range": ({**good, b"labels": [11] * 20}, "labels span 11..11, expected 0..9"),
        "not a dict": ([good[b"data"]], "pickle holds list, expected a dict"),
    }


@pytest.mark.parametrize("case", list(bad_batches()))
def test_cifar_bad_contents(tmp_path, case):
    write_cifar(tmp_path)
    obj, message = bad_batches()[case]
    dump(tmp_path / "data_batch_3", obj)
    with pytest.raises(DataError) as e:
        load_dataset(cfg("cifar10", tmp_path))
    assert "data_batch_3" in str(e.value) and message in str(e.value)


def test_cifar_truncated_and_missing(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="test_batch: not a CIFAR-10 batch pickle"):
        load_dataset(cfg("cifar10", tmp_path))
    path.unlink()
    with pytest.raises(ConfigError, match="missing test_batch"):
        load_dataset(cfg("cifar10", tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no CIFAR-10 batches found"):
        load_dataset(cfg("cifar10", tmp_path / "empty"))


# ------------------------------------------------------------------ N-MNIST


def events(*evs: tuple[int, int, int, int]) -> bytes:
    """(x, y, polarity, timestamp us) -> the 40-bit N-MNIST encoding."""
    out = bytearray()
    for x, y, p, ts in evs:
        out += bytes([x, y, (p << 7) | (ts >> 16) & 0x7F, (ts >> 8) & 0xFF, ts & 0xFF])
    return bytes(out)


def write_nmnist(root: Path, per_class: dict[str, int] | None = None) -> Path:
    """Every sample of digit k has an on event at (x=k, y=k, t=0) and an off one at t=1000."""
    for folder, n in (per_class or {"Train": 2, "Test": 1}).items():
        for k in range(10):
            (root / folder / str(k)).mkdir(parents=True)
            for i in range(n):
                data = events((k, k, 1, 0), (33, 0, 0, 1000), (1, 2, 1, 500))
                (root / folder / str(k) / f"{i:05d}.bin").write_bytes(data)
    return root


def test_nmnist_loads(tmp_path):
    root = write_nmnist(tmp_path)
    d = load_dataset(cfg("nmnist", root, val_fraction=0.5), timesteps=4)
    assert d.input_shape == (2, 34, 34, 4) and d.name == "nmnist"
    assert [len(d.x_train), len(d.x_val), len(d.x_test)] == [10, 10, 10]
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert set(np.unique(x)) == {0.0, 1.0}
        assert (x.sum(axis=(1, 2, 3, 4)) == 3).all()
        assert (x[np.arange(len(y)), 1, y, y, 0] == 1).all()  # [polarity, y, x, bin]
        assert (x[:, 0, 0, 33, 3] == 1).all()  # t = t_last -> last bin
        assert (x[:, 1, 2, 1, 1] == 1).all()  # t = 500: floor(500 * 4 / 1001) = 1
    assert load_dataset(cfg("nmnist", root)).input_shape == (2, 34, 34, 16)
    small = load_dataset(cfg("nmnist", root, val_fraction=0.5, limit=2), timesteps=3)
    assert [len(small.x_train), len(small.x_val), len(small.x_test)] == [2, 2, 2]


def test_nmnist_binning_rule(tmp_path):
    from randhet.data.nmnist import event_frames, read_events

    path = tmp_path / "s.bin"
    # duplicate events in one bin give 1.0; a y == 240 marker adds 2**13 us to later events
    path.write_bytes(events((0, 0, 1, 0), (0, 0, 1, 1), (5, 240, 0, 0), (3, 4, 0, 100)))
    x, y, p, ts = read_events(path)
    assert x.tolist() == [0, 0, 3] and ts.tolist() == [0, 1, 8192 + 100] and p.tolist() == [1, 1, 0]
    f = event_frames(path, 2)
    assert f.shape == (2, 34, 34, 2) and f.sum() == 2
    assert f[1, 0, 0, 0] == 1 and f[0, 4, 3, 1] == 1
    path.write_bytes(b"")
    assert event_frames(path, 2).sum() == 0


def test_nmnist_corrupt_and_missing(tmp_path):
    root = write_nmnist(tmp_path)
    bad = root / "Train" / "3" / "00001.bin"
    bad.write_bytes(events((1, 1, 0, 5))[:-1])
    with pytest.raises(DataError, match=r"00001\.bin: 4 bytes, expected a multiple of 5"):
        load_dataset(cfg("nmnist", root, limit=0))
    bad.write_bytes(events((34, 1, 0, 5)))
    with pytest.raises(DataError, match=r"00001\.bin: event at x=34, y=1, expected x and y < 34"):
        load_dataset(cfg("nmnist", root))
    bad.unlink()
    (root / "Test" / "7" / "00000.bin").unlink()
    (root / "Test" / "7").rmdir()
    with pytest.raises(ConfigError, match="missing Test/7/"):
        load_dataset(cfg("nmnist", root))
    empty = write_nmnist(tmp_path / "empty", {"Train": 1, "Test": 0})
    with pytest.raises(ConfigError, match="Test: no .bin files"):
        load_dataset(cfg("nmnist", empty))
