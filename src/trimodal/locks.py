"""One writer per folder: ``train --out`` and ``world --out`` hold a lock while they write.

The lock is ``fcntl.flock`` on ``.FOLDER.lock`` beside the folder (so the folder's own files
stay byte-identical across runs): the kernel releases it when its holder exits, even by
``kill -9``, so a crashed holder never blocks the next run. The file also records who holds it
(pid, what, start time), which the refusal message quotes.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from types import TracebackType


class FolderLock:
    """Exclusive lock of a folder for the duration of a ``with`` block.

    Raises:
        FileExistsError: another live process holds the folder, naming it and what to do.
    """

    def __init__(self, folder: str | os.PathLike[str], purpose: str):
        self.folder = Path(folder)
        self.purpose = purpose
        self._handle: int | None = None

    @property
    def path(self) -> Path:
        """The lock file: ``.NAME.lock`` beside the folder."""
        folder = self.folder.resolve()
        return folder.with_name(f".{folder.name}.lock")

    def __enter__(self) -> FolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            os.close(handle)
            raise FileExistsError(
                f"{self.folder} is being written by another trimodal process ({holder}); wait "
                f"for it to finish or choose another folder"
            ) from None
        os.ftruncate(handle, 0)
        record = {
            "pid": os.getpid(),
            "purpose": self.purpose,
            "command": " ".join(sys.argv[:6]),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.write(handle, json.dumps(record).encode())
        self._handle = handle
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            os.close(self._handle)
            self._handle = None


def _holder(handle: int) -> str:
    """Who holds the lock, as recorded in its file."""
    try:
        os.lseek(handle, 0, os.SEEK_SET)
        record = json.loads(os.read(handle, 4096).decode() or "{}")
    except (OSError, ValueError):
        return "holder unknown"
    return f"pid {record.get('pid')}, {record.get('purpose')}, since {record.get('since')}"
