"""Writing a dataset folder atomically: build in a hidden sibling folder, rename into place at the end.

`Staging(out)` guarantees that `out` is only ever replaced by a complete build: it refuses an `out` that
exists, is not empty and is not an earlier build (a marker file says so), and a killed build leaves only
its hidden staging folder behind, which the next build into the same place removes.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from blockattn.errors import UserError


class Staging:
    def __init__(self, out: Path, marker: str):
        self.out, self.marker = Path(out).resolve(), marker
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"{out}: exists and is not a folder")
        if self.out.is_dir() and any(self.out.iterdir()) and not (self.out / marker).is_file():
            raise UserError(f"{out}: exists, is not empty and is not a dataset built here; "
                            "choose another --out (nothing was written)")
        self.prefix = f".{self.out.name}.partial-"
        self.path = self.out.parent / f"{self.prefix}{os.getpid()}"

    def __enter__(self) -> Path:
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            for stale in self.out.parent.glob(f"{self.prefix}*"):  # left by killed builds
                shutil.rmtree(stale, ignore_errors=True)
            self.path.mkdir()
        except OSError as exc:
            raise UserError(f"{self.out.parent}: cannot create the output folder ({exc.strerror})") from None
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> None:
        """Swap the finished staging folder in for `out` (keeping the old build until the new one is in)."""
        old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
        try:
            (self.path / self.marker).touch()
            if self.out.exists():
                os.replace(self.out, old)
            os.replace(self.path, self.out)
        except OSError as exc:
            if old.exists() and not self.out.exists():
                os.replace(old, self.out)
            reason = "disk full" if exc.errno == errno.ENOSPC else exc.strerror
            raise UserError(f"{self.out}: cannot move the finished build into place ({reason})") from None
        shutil.rmtree(old, ignore_errors=True)
