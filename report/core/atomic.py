"""The one way a file is written: to a temporary name beside it, then renamed over it.

A reader never sees half a file, a crash or a full disk leaves the old file (and no temporary) behind,
and an ``OSError`` becomes one line that names the path, the cause and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from report.core.errors import ReportError

Writer = Callable[[BinaryIO], None]


def atomic_write(
    path: Path, data: bytes | memoryview | str | Writer, fix: str = "pass a writable --out"
) -> None:
    """Replace ``path`` with ``data`` (bytes, text, or a function that writes to a binary file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(
                fh.fileno()
            )  # on disk before the rename makes it visible: no empty file after a power cut
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        raise os_error(e, path, fix) from None
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def os_error(e: OSError, path: Path, fix: str, kind: type[ReportError] = ReportError) -> ReportError:
    """An ``OSError`` as one line a user can act on; a full disk is named as such."""
    if e.errno == errno.ENOSPC:
        return kind(f"no space left on the device holding {path}: free some space, or {fix}")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return kind(f"cannot write {path}: permission denied; {fix}")
    return kind(f"cannot write {path}: {e.strerror or e}; {fix}")
