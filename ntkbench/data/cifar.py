"""CIFAR-10 and CIFAR-5m from local files; nothing is downloaded at run time.

Both live under one data directory: ``--ntkbench-data-dir``, else ``$NTKBENCH_DATA_DIR``,
else ``~/data``:

* ``cifar-10-batches-py/`` — the python version of CIFAR-10 (``data_batch_1`` …
  ``data_batch_5`` pickles, 10,000 images each; ``test_batch`` is not used: the splits are
  cut from the 50,000 training images, as for every other dataset);
* ``cifar5m/`` — ``part0.npz`` … ``part5.npz`` of CIFAR-5m (Nakkiran et al. 2021), arrays
  ``X`` (images, uint8, N×32×32×3) and ``Y`` (labels). Only the rows a run needs are read.

Images are scaled to [0, 1] and standardised per channel with the mean and standard
deviation of the training split; ``classes`` keeps a subset of the classes (two for a
binary task), relabelled 0…k−1. ``seed`` shuffles the pool before it is cut (for CIFAR-5m
the pool is the first rows the run needs, so seeds share images). The names and sizes of
the files are part of the experiment cache key. A file that is damaged or not in its format
raises a one-line :class:`DataFileError` naming it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ntkbench.data.splits import Splits, centred_one_hot
from ntkbench.registry import register_dataset
from ntkbench.storage import DATA_ENV, one_line

CIFAR10_DIR, CIFAR10_FILES = "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR5M_DIR, CIFAR5M_FILES = "cifar5m", tuple(f"part{i}.npz" for i in range(6))
NUM_CLASSES = 10
#: What reading a file not in its format raises (unpickling junk can raise any of these).
UNREADABLE = (pickle.UnpicklingError, zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, LookupError,
              TypeError, AttributeError, ImportError)


class DataMissingError(FileNotFoundError):
    """A dataset's files are not where they should be; the message says what to put where."""


class DataFileError(ValueError):
    """A dataset's file is damaged or not in its format; the message names the file."""


@contextlib.contextmanager
def _reading(path: Path, what: str) -> Iterator[None]:
    """Turn any failure to read ``path`` into one DataFileError naming it and ``what`` it should be."""
    try:
        yield
    except UNREADABLE as exc:
        raise DataFileError(f"{path} is not {what}: {one_line(exc)}") from None


def _check(condition: bool, problem: str) -> None:
    if not condition:
        raise ValueError(problem)


def _check_labels(labels: np.ndarray, images: np.ndarray, name: str) -> None:
    _check(labels.shape == (len(images),) and np.isin(labels, np.arange(NUM_CLASSES)).all(),
           f"{name} are not {len(images)} classes in 0…{NUM_CLASSES - 1}, one per image")


def data_root() -> Path:
    return Path(os.environ.get(DATA_ENV) or Path.home() / "data").expanduser()


def _require(directory: Path, files: tuple[str, ...], what: str) -> list[Path]:
    """The paths of ``files`` in ``directory``, or one DataMissingError naming what is missing."""
    missing = [name for name in files if not (directory / name).is_file()]
    if missing:
        found = "is missing" if not directory.is_dir() else f"lacks {', '.join(missing)}"
        raise DataMissingError(f"{directory} {found}: put {what} ({', '.join(files)}) there, or point "
                               f"--ntkbench-data-dir / ${DATA_ENV} at the directory that holds {directory.name}/")
    return [directory / name for name in files]


def read_cifar10(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 50,000 training images (N×32×32×3 uint8) and labels of CIFAR-10."""
    paths = _require(root / CIFAR10_DIR, CIFAR10_FILES, "the python version of CIFAR-10")
    images, labels = [], []
    for path in paths:
        with _reading(path, "a CIFAR-10 python batch"), path.open("rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
            _check(isinstance(batch, dict) and {b"data", b"labels"} <= set(batch), "no dict of data and labels")
            data, y = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
            _check(data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3 * 32 * 32,
                   f"data is {data.dtype} {data.shape}, not uint8 rows of 3×32×32 pixels")
            _check_labels(y, data, "labels")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(y.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _npz_rows(path: Path, key: str, count: int) -> np.ndarray:
    """The first ``count`` rows of array ``key`` in an .npz file, reading only those rows."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as handle:
        version = np.lib.format.read_magic(handle)
        shape, fortran, dtype = (np.lib.format.read_array_header_1_0(handle) if version == (1, 0)
                                 else np.lib.format.read_array_header_2_0(handle))
        if fortran:
            raise ValueError(f"{key} is stored in Fortran order")
        count = min(count, shape[0])
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        return np.frombuffer(handle.read(count * row), dtype).reshape(count, *shape[1:])


def read_cifar5m(root: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` images and labels of CIFAR-5m, part after part."""
    paths = _require(root / CIFAR5M_DIR, CIFAR5M_FILES, "the CIFAR-5m parts")
    images, labels, remaining = [], [], count
    for path in paths:
        if remaining <= 0:
            break
        with _reading(path, "a CIFAR-5m part (arrays X and Y)"):
            x, y = _npz_rows(path, "X", remaining), _npz_rows(path, "Y", remaining)
            _check(x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3), f"X is {x.dtype} {x.shape[1:]} images, "
                   "not uint8 32×32×3")
            _check_labels(y, x, "Y")
        images.append(x)
        labels.append(y.astype(np.int64))
        remaining -= len(x)
    return np.concatenate(images), np.concatenate(labels)


def image_splits(x: np.ndarray, y: np.ndarray, n_train: int, n_val: int, n_test: int, seed: int,
                 classes: tuple[int, ...] | None) -> Splits:
    """Shuffle, keep ``classes``, cut test | validation | train, standardise per channel."""
    if classes:
        keep = np.isin(y, classes)
        x, y = x[keep], np.searchsorted(np.asarray(sorted(classes)), y[keep])
    order = np.random.default_rng(seed).permutation(len(x))
    num_classes = len(classes) if classes else NUM_CLASSES
    splits = Splits.from_pool(x[order], centred_one_hot(y[order], num_classes), y[order], n_train, n_val, n_test)
    train = splits.x_train.astype(np.float64) / 255.0  # float64 sums: float32 ones drift past ~10⁴ images
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2)) + 1e-8

    def standardise(images: np.ndarray) -> np.ndarray:
        return ((images / 255.0 - mean) / std).astype(np.float32)

    return Splits(standardise(splits.x_train), splits.targets_train, splits.labels_train,
                  standardise(splits.x_val), splits.targets_val, splits.labels_val,
                  standardise(splits.x_test), splits.targets_test, splits.labels_test)


def fingerprint(directory: str, files: tuple[str, ...]) -> str:
    """Names and sizes of a dataset's files, part of the experiment cache key: results
    computed from other files are not reused."""
    folder = data_root() / directory
    return ";".join(f"{name}:{(folder / name).stat().st_size if (folder / name).is_file() else 'absent'}"
                    for name in files)


@register_dataset("cifar10", input_kind="image", fingerprint=lambda: fingerprint(CIFAR10_DIR, CIFAR10_FILES))
def load_cifar10(n_train: int, n_val: int, n_test: int, seed: int = 0, classes: tuple[int, ...] | None = None) -> Splits:
    x, y = read_cifar10(data_root())
    return image_splits(x, y, n_train, n_val, n_test, seed, classes)


@register_dataset("cifar5m", input_kind="image", fingerprint=lambda: fingerprint(CIFAR5M_DIR, CIFAR5M_FILES))
def load_cifar5m(n_train: int, n_val: int, n_test: int, seed: int = 0, classes: tuple[int, ...] | None = None) -> Splits:
    """Reads 2 × (n_train + n_val + n_test) rows (×10 / number of classes with ``classes``),
    enough for the splits after class selection, and shuffles those."""
    needed = n_train + n_val + n_test
    x, y = read_cifar5m(data_root(), 2 * needed * NUM_CLASSES // len(classes) if classes else 2 * needed)
    return image_splits(x, y, n_train, n_val, n_test, seed, classes)
