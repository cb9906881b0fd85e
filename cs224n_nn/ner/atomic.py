"""``atomic_write``: replace a file only once its new content is complete and on disk.

The file is written to a temporary ``.NAME.tmp-PID`` *in the destination's
folder* (so the rename never crosses file systems), flushed and
fsynced, then renamed over the destination with ``os.replace``, and the
folder is fsynced.  Readers see either the old complete file or the new
complete one.  On an exception (Ctrl-C included) the temporary file is
removed; one left by a SIGKILL is removed by the next write into that folder.
"""

from __future__ import annotations

import contextlib
import os
import re

__all__ = ["atomic_write"]

_TEMP = re.compile(r"^\..+\.tmp-(\d+)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_stale_temporaries(folder: str) -> None:
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            match = _TEMP.match(name)
            if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))


def _fsync_folder(folder: str) -> None:
    # Makes the rename itself durable; not possible on every platform or file system.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs):
    """Open a temporary file beside ``path``; on success flush, fsync and rename it over ``path``.

    On any exception (KeyboardInterrupt included) the temporary file is
    removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    _remove_stale_temporaries(folder)
    temporary = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(temporary, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)
