"""Confirm recordings byte for byte against git mirrors of their source repositories.

    python tests/recordings/verify_git.py MIRRORS_DIR

``MIRRORS_DIR`` holds one bare git directory per source repository, named ``owner+name/repo``
(the layout the project's mirror tool writes). For each manifest entry this prints one line:

- ``exact``: ``git show <commit>:<source_path>`` is byte-identical to the kept file;
- ``same-at <sha>``: the recorded commit is not in the mirror (the index saw a newer version than
  the mirror's snapshot), but the file at the mirror's HEAD is byte-identical;
- ``blob-in-history``: neither, but a file with exactly these bytes (the same git blob id) is in
  the mirror's history (a version the path had before the snapshot, or the same recording
  under another path);
- ``unverified``: none of these (the file is not at the mirror's HEAD): only the index's
  length and the sha256 recorded here vouch for it;
- ``DIFFERS``: the bytes differ -- exit status 1.

Not a test (it needs the mirrors, which are not in the repository); its output is kept in
``README.md`` with the date it was run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from replay import load_manifest  # type: ignore[import-not-found]


def _show(git_dir: Path, spec: str) -> bytes | None:
    p = subprocess.run(["git", "--git-dir", str(git_dir), "show", spec], capture_output=True)
    return p.stdout if p.returncode == 0 else None


def main(mirrors: Path) -> int:
    here = Path(__file__).parent
    bad = 0
    for e in load_manifest():
        git_dir = mirrors / e.source_repo.replace("/", "+") / "repo"
        kept = (here / e.path).read_bytes()
        at_commit = _show(git_dir, f"{e.commit}:{e.source_path}")
        if at_commit is not None:
            verdict = "exact" if at_commit == kept else "DIFFERS"
        else:
            head = _show(git_dir, "HEAD")
            at_head = _show(git_dir, f"HEAD:{e.source_path}")
            blob = (
                subprocess.run(["git", "hash-object", "--stdin"], input=kept, capture_output=True)
                .stdout.decode()
                .strip()
            )
            in_history = (
                subprocess.run(
                    ["git", "--git-dir", str(git_dir), "cat-file", "-e", blob],
                    capture_output=True,
                ).returncode
                == 0
            )
            if at_head is None or head is None:
                verdict = "blob-in-history" if in_history else "unverified"
            elif at_head == kept:
                sha = subprocess.run(
                    ["git", "--git-dir", str(git_dir), "rev-parse", "HEAD"],
                    capture_output=True,
                    text=True,
                ).stdout.strip()
                verdict = f"same-at {sha}"
            else:
                verdict = "DIFFERS"
        bad += verdict == "DIFFERS"
        print(f"{verdict:52} {e.id}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
