"""A real small filesystem for full-disk tests (issue 9): a tmpfs mounted by the test, filled
to the last byte, never a mock."""
from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def mounted_tmpfs(mount_point: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``mount_point`` (created), unmounted afterwards."""
    mount_point.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], check=True, timeout=30)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True, timeout=30)


def fill_disk(directory: Path) -> None:
    """Fill the file system of ``directory`` to the last byte (a real ENOSPC)."""
    with open(directory / "filler", "wb", buffering=0) as fh:
        for size in (1 << 20, 65536, 4096, 512, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError:
                continue
