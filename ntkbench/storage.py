"""Where ntkbench keeps files, and how it reads and writes them: atomically, under a file
lock; a damaged file is named in a warning and recomputed; a read-only cache is read.

One cache root holds everything that is cached: ``<root>/experiments`` and
``<root>/datasets``. The root is the one a session sets (``--ntkbench-cache-dir``, through
:func:`use_cache_root`), else ``$NTKBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/ntkbench``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from filelock import FileLock

CACHE_ENV = "NTKBENCH_CACHE_DIR"
DATA_ENV = "NTKBENCH_DATA_DIR"  # where datasets read from files (CIFAR) are looked for
#: What reading a damaged or ill-formed file raises (a reader's own checks raise ValueError).
READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)
_NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
T = TypeVar("T")
_session_root: Path | None = None  # set by use_cache_root


class ReadOnlyCacheError(PermissionError):
    """Something must be computed and stored in a cache directory that is not writable."""


def cache_root() -> Path:
    """The cache root: the session's (:func:`use_cache_root`), else ``$NTKBENCH_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/ntkbench``."""
    if _session_root is not None:
        return _session_root
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "ntkbench"


@contextlib.contextmanager
def use_cache_root(root: Path | None) -> Iterator[Path]:
    """Within the block, :func:`cache_root` is ``root`` (None: unchanged); restored after."""
    global _session_root
    previous = _session_root
    if root is not None:
        _session_root = Path(root).expanduser().absolute()
    try:
        yield cache_root()
    finally:
        _session_root = previous


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path: Path) -> Iterator[bool]:
    """Hold an inter-process lock for ``path`` (a sibling ``.lock`` file) and yield whether
    ``path`` can be written. Where the directory is not writable the lock may not be created:
    then yield False without it, so that a complete file is read (:func:`require_writable`)."""
    lock = FileLock(str(path) + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as exc:
        if exc.errno not in _NOT_WRITABLE:
            raise
    try:
        yield lock.is_locked and os.access(path.parent, os.W_OK, effective_ids=os.access in os.supports_effective_ids)
    finally:
        if lock.is_locked:
            lock.release()


def require_writable(writable: bool, path: Path) -> None:
    """Raise a one-line ReadOnlyCacheError when ``path`` must be computed but cannot be stored."""
    if not writable:
        raise ReadOnlyCacheError(f"{path} must be computed, but {path.parent} is not writable: point "
                                 f"--ntkbench-cache-dir / ${CACHE_ENV} at a writable directory")


def read_valid(path: Path, read: Callable[[Path], T], what: str) -> T | None:
    """``read(path)``, or None when the file is absent or damaged; a damaged or ill-formed file
    (``read`` raises one of READ_ERRORS) is named in a warning, so that it is recomputed."""
    try:
        return read(path)
    except FileNotFoundError:
        return None
    except READ_ERRORS as exc:
        warnings.warn(f"ignoring damaged {what} {path} ({one_line(exc)}); it is recomputed", stacklevel=3)
        return None


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__
