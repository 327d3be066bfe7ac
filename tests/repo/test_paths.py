"""Nothing in the project reads from outside the repository (and its own
.tools/): no relative path in a tracked file climbs above the repository's
root, and no file names the build machine's folders beside it."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A relative path that climbs: one or more "../" and what follows.
CLIMB = re.compile(r"(?<![\w.])((?:\.\./)+)([\w.\-/]*)")
# Places outside the repository that builds here could be tempted to use.
OUTSIDE = [
    re.compile(r"/work/(?:shared|main|\.library|\.mirror)\b"),
    re.compile(r"\bshared/reference\b"),
    re.compile(r"\bROOT\.parent\b"),
]
SKIP_SUFFIXES = {".png", ".jpg", ".zip", ".lock", ".pem"}
SKIP_NAMES = {"package-lock.json", "Cargo.lock"}


def outside_references(path: Path, text: str, root: Path = ROOT):
    """(line number, reference) for every reference in `text` (of the file at
    `path`) to a place outside `root`."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in CLIMB.finditer(line):
            target = (path.parent / (match.group(1) + match.group(2))).resolve()
            if root != target and root not in target.parents:
                found.append((number, match.group(0)))
        for pattern in OUTSIDE:
            for match in pattern.finditer(line):
                found.append((number, match.group(0)))
    return found


def tracked_files():
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, stdout=subprocess.PIPE).stdout
    for name in names.decode().split("\0"):
        path = ROOT / name
        if name and path.is_file() and path.suffix not in SKIP_SUFFIXES and path.name not in SKIP_NAMES:
            yield path


def test_no_tracked_file_refers_outside_the_repository():
    problems = []
    for path in tracked_files():
        if path == Path(__file__).resolve():
            continue  # this file names the patterns it looks for
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        problems += [f"{path.relative_to(ROOT)}:{n}: {ref}" for n, ref in outside_references(path, text)]
    assert not problems, "references outside the repository:\n" + "\n".join(problems)


def test_the_check_sees_what_it_must(tmp_path):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    script = repo / "scripts" / "bench"
    inside = 'cd "$(dirname "$0")/.."\ncat ../docs/a.md\ninclude_str!("../web/app.js")\n'
    assert outside_references(script, inside, repo) == []
    climbing = "python3 ../../shared/reference/seed_lambda.py\n"
    assert [ref for _, ref in outside_references(script, climbing, repo)] == [
        "../../shared/reference/seed_lambda.py", "shared/reference"]
    assert outside_references(repo / "run.py", 'ROOT.parent / "x"\n', repo) == [(1, "ROOT.parent")]
    assert outside_references(repo / "README.md", "see /work/shared/README.md\n", repo) == [(1, "/work/shared")]
