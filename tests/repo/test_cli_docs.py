"""Every `items` subcommand is named where the docs list the CLI's
commands: README's crate table and docs/architecture.md's layout. The
subcommands are read from `cli/src/main.rs` (the `Command` enum), so a new
one that the docs do not name fails here (issue 42: content drift the path
test cannot see)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def subcommands(main_rs: str) -> list[str]:
    """The kebab-case names of the `Command` enum's variants."""
    body = re.search(r"enum Command \{(.*?)\n\}", main_rs, re.S).group(1)
    variants = re.findall(r"^\s+([A-Z]\w*)\(", body, re.M)
    return [re.sub(r"(?<!^)([A-Z])", r"-\1", v).lower() for v in variants]


def listed(line: str) -> set[str]:
    """The names a docs line lists: backticked or bare, comma-separated."""
    return set(re.findall(r"[a-z][a-z-]*", line))


def test_the_subcommands_are_read():
    names = subcommands((ROOT / "cli/src/main.rs").read_text())
    assert {"serve", "token", "replay", "export", "import"} <= set(names), names


def test_readme_and_architecture_name_every_subcommand():
    names = subcommands((ROOT / "cli/src/main.rs").read_text())
    readme = next(l for l in (ROOT / "README.md").read_text().splitlines() if l.startswith("| `cli/`"))
    layout = next(l for l in (ROOT / "docs/architecture.md").read_text().splitlines() if l.startswith("cli/ "))
    for where, line in [("README.md", readme), ("docs/architecture.md", layout)]:
        missing = [name for name in names if name not in listed(line)]
        assert not missing, f"{where} does not name {missing}: {line}"


def test_a_missing_name_is_found():
    line = "cli/               items-cli      the items CLI (serve, token)"
    assert "replay" not in listed(line)
