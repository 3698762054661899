"""An older commit of this repository, checked out beside the tree for benchmarks that compare the two.

The checkout is a detached git worktree in a folder the caller owns (a temporary
one), removed again when the comparison is over, also when it failed.
"""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def older_tree(commit: str, into: Path) -> Iterator[Path | None]:
    """``commit`` checked out at ``into`` for the length of the block; None, and nothing checked out, for "none"."""
    if commit == "none":
        yield None
        return
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), commit],
                   check=True, capture_output=True)
    try:
        yield into
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(into)], capture_output=True)
