"""What the docs name exists: a repository path in backticks (`domain/src/
event.rs`, with or without `:line`) is a file or folder of the repository,
and a Rust path in backticks that starts with one of our crates
(`items_local::hosted_ui`) names a module of that crate. Renames leave the
docs behind otherwise (issue 24, drift)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# The repository's top-level folders: a backticked token starting with one is a path.
TOP = {"domain", "adapters", "functions", "cli", "testkit", "pulumi", "web", "e2e", "docs", "scripts", "bench", "tests", ".ci"}
# Crate names (and the short names the docs use) to their source folders.
CRATES = {
    "items_domain": "domain/src",
    "domain": "domain/src",
    "items_aws": "adapters/aws/src",
    "items_local": "adapters/local/src",
    "items_testkit": "testkit/src",
    "testkit": "testkit/src",
    "items_cli": "cli/src",
}
# Folders that are not crates, though a Rust-looking path may start with one.
NOT_CRATES = {"adapters", "functions"}

TOKEN = re.compile(r"`([^`\s]+)`")
RUST_PATH = re.compile(r"^([A-Za-z_]\w*)(?:::[A-Za-z_]\w*)+")


def missing_paths(text: str, root: Path = ROOT):
    """(line number, token) for every backticked repository path or crate
    module path in `text` that does not exist under `root`."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in TOKEN.finditer(line):
            token = match.group(1)
            if "/" in token and token.split("/")[0] in TOP:
                path = re.sub(r":\d+(-\d+)?$", "", token)
                if not any(c in path for c in "*<>{}$") and not (root / path).exists():
                    found.append((number, token))
                continue
            rust = RUST_PATH.match(token)
            if not rust:
                continue
            crate, module = token.split("::")[:2]
            if crate in NOT_CRATES:
                found.append((number, token))
            elif crate in CRATES:
                source = root / CRATES[crate]
                lib = (source / "lib.rs").read_text(encoding="utf-8") if (source / "lib.rs").exists() else ""
                known = (source / f"{module}.rs").exists() or (source / module).is_dir()
                if not known and not re.search(rf"\b{re.escape(module)}\b", lib):
                    found.append((number, token))
    return found


def test_every_path_the_docs_name_exists():
    problems = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        problems += [f"{doc.relative_to(ROOT)}:{n}: {token}" for n, token in missing_paths(text)]
    assert not problems, "the docs name paths that do not exist:\n" + "\n".join(problems)


def test_the_check_sees_what_it_must(tmp_path):
    (tmp_path / "domain/src").mkdir(parents=True)
    (tmp_path / "domain/src/lib.rs").write_text("pub mod event;\npub use item::Item;\n")
    (tmp_path / "domain/src/event.rs").write_text("")
    text = "\n".join([
        "`domain/src/event.rs:12` and `domain::event::Event` and `domain::Item` exist;",
        "`domain/src/gone.rs`, `domain::gone::f` and `adapters::hosted_ui` do not;",
        "`domain/src/*.rs` and `cargo run` are not paths.",
    ])
    assert missing_paths(text, tmp_path) == [
        (2, "domain/src/gone.rs"),
        (2, "domain::gone::f"),
        (2, "adapters::hosted_ui"),
    ]


# Rules that changed, and the words that stated the old ones (review L7):
# unknown event types are never skipped; a stream of events is not ordered
# across an item's versions; poison is not retried by Lambda.
RETIRED = [
    "can skip them",
    "each item's records stay in order",
    "records still in order",
    "set aside after 5",
]


def test_the_docs_do_not_state_retired_rules():
    for doc in DOCS:
        text = " ".join(doc.read_text().split())
        for words in RETIRED:
            assert words not in text, f"{doc.relative_to(ROOT)} still says '{words}'"
