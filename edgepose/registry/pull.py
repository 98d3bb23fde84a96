"""Downloading known models: progress bar, SHA-256 check, atomic rename (a failed pull leaves nothing behind)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from edgepose.errors import EdgeposeError
from edgepose.registry.catalog import ModelEntry, catalog, download_dir

CHUNK = 1 << 16
log = logging.getLogger(__name__)


def _fetch(url: str, dest: Path, *, progress: bool, timeout: float, algorithm: str = "sha256") -> str:
    """Stream ``url`` into ``dest``; return its ``algorithm`` hex digest."""
    from tqdm import tqdm

    digest = hashlib.new(algorithm)
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:  # noqa: S310 - https URLs from our manifest
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress, leave=False) as bar:
            while chunk := resp.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()


def pull(name: str, *, dest_root: Path | None = None, progress: bool = True, timeout: float = 30.0,
         force: bool = False) -> Path:
    """Download model ``name`` into ``dest_root/name/`` and return its .xml path."""
    entry: ModelEntry | None = catalog().get(name)
    if entry is None:
        raise EdgeposeError(f"unknown model {name!r}; `edgepose models list` shows the known ones")
    if not entry.files:
        raise EdgeposeError(f"{name} is not downloadable; it is made locally (see `edgepose models list`)")
    root = Path(dest_root) if dest_root else download_dir()
    final = root / name
    xml = final / next(f.path for f in entry.files if f.path.endswith(".xml"))
    if xml.exists() and not force:
        return xml
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        for f in entry.files:
            algorithm, expected = f.checksum or ("sha256", None)
            try:
                digest = _fetch(f.url, tmp / f.path, progress=progress, timeout=timeout, algorithm=algorithm)
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise EdgeposeError(f"cannot download {f.url}: {reason}. Check the network, or copy "
                                    f"{', '.join(x.path for x in entry.files)} into {final}/ by hand") from None
            if expected is None:
                log.warning("%s has no published checksum; it was downloaded unverified", f.path)
            elif digest != expected:
                raise EdgeposeError(f"checksum mismatch for {f.path}: expected {algorithm} {expected}, got {digest}; "
                                    "the download is corrupt or the file changed upstream — nothing was installed")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return xml
