"""scripts/build-lambdas builds for the architecture the Pulumi stack
declares, never the build machine's (deploy review N1: with no target flag
cargo-lambda builds for a Linux host's own architecture, so a Linux aarch64
machine made arm64 zips for x86_64 functions), and docs/deploy.md quotes the
command it runs (N16). Read, not run: running it builds the workspace."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "scripts/build-lambdas").read_text()
CONFIG = (ROOT / "pulumi/config.ts").read_text()
DEPLOY = (ROOT / "docs/deploy.md").read_text()


def build_command(script: str) -> str:
    """The `cargo lambda build` command of the script, continuation lines joined."""
    joined = script.replace("\\\n", " ")
    line = next(l for l in joined.splitlines() if l.strip().startswith("cargo lambda build"))
    return re.sub(r"\s+", " ", line.strip())


def test_the_build_always_names_an_architecture():
    command = build_command(SCRIPT)
    assert '"$arch_flag"' in command, command
    # The flags cargo-lambda takes for each architecture (`--target` would
    # conflict with them, so the script refuses it).
    assert re.search(r"^\s*x86_64\) arch_flag=--x86-64 machine=62 ;;", SCRIPT, re.M)
    assert re.search(r"^\s*arm64\) arch_flag=--arm64 machine=183 ;;", SCRIPT, re.M)
    assert "--target" not in command


def test_the_default_architecture_is_the_stacks_default():
    default = re.search(r"^arch=\$\{LAMBDA_ARCH:-(\w+)\}$", SCRIPT, re.M).group(1)
    stack = re.search(r'^    architecture: "(\w+)",$', CONFIG, re.M).group(1)
    assert default == stack == "x86_64"
    # Both architectures the stack accepts can be built.
    accepted = re.search(r"export const ARCHITECTURES = \[(.*)\] as const;", CONFIG).group(1)
    assert sorted(re.findall(r'"(\w+)"', accepted)) == ["arm64", "x86_64"]


def test_the_elf_machines_agree_with_the_pulumi_check():
    machines = dict(re.findall(r"(\w+): (0x[0-9a-f]+)", re.search(r"ELF_MACHINES[^=]*= \{([^}]*)\}", CONFIG).group(1)))
    assert {k: int(v, 16) for k, v in machines.items()} == {"x86_64": 62, "arm64": 183}


def test_deploy_md_quotes_the_command_the_script_runs():
    quoted = re.search(r"It runs `(cargo lambda build [^`]*)`", DEPLOY)
    assert quoted, "docs/deploy.md section 2 quotes no cargo lambda build command"
    # The script's command with its defaults (release profile, x86_64).
    defaults = {'"$profile"': "release", '"$arch_flag"': "--x86-64", '"$out"': "target/lambda"}
    command = build_command(SCRIPT)
    for variable, value in defaults.items():
        command = command.replace(variable, value)
    words = set(command.split())
    for word in quoted.group(1).split():
        assert word in words, f"{word!r} of docs/deploy.md is not in: {command}"
    assert "--release" not in quoted.group(1), "the script builds with --profile release, not cargo-lambda's --release"
