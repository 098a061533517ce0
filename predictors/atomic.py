"""Write a folder all at once: build it beside its target, then rename it into place.

A rename within one file system is atomic, so readers (a server scanning the
store, a second command) see the old folder or the new one, never half of
one, and a failure leaves the target as it was. Every command that writes a
model version (store add, store build, store import) or an output folder
(torchserve package) goes through here.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_folder(target: Path, replace: bool = False) -> Iterator[Path]:
    """Yield an empty folder that becomes `target` when the block ends without error.

    With replace=False an existing target raises FileExistsError (checked
    before and, against a concurrent writer, again at the rename); with
    replace=True the old folder is moved aside and removed after the swap.
    """
    if target.exists() and not replace:
        raise FileExistsError(f"{target} already exists")
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # The staging folder is a hidden sibling: same file system, so the
        # rename is atomic, and a store scan skips names starting with a dot.
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
            staging = Path(tmp) / "new"
            staging.mkdir()
            yield staging
            if target.exists():
                if not replace:
                    raise FileExistsError(f"{target} already exists")
                target.rename(Path(tmp) / "old")
            staging.rename(target)
    except BaseException:
        # Leave no empty parent folders behind: the store stays as it was.
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
