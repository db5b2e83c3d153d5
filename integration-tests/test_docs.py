"""Every Python block of the docs and the READMEs runs as written.

Each `` ```python `` block of ``docs/**/*.md``, ``README.md`` and
``packages/*/README.md`` is written to a file in an empty temporary directory
and run there by this interpreter, in a fresh process, with a timeout. Console
sessions (`` ```console ``) and other languages are not run.

An HTML comment right before a block says what else it needs
(``<!-- docs-test: FLAG ... -->``):

- ``ssh``: the block reaches remote hosts by the names the docs use
  (``node7``, ``lab``, ``gateway``). They are pointed at the test sshd
  (``MANYMAP_SSH_CONFIG``: an ssh_config with those aliases) and registered
  with this interpreter as their Python (``MANYMAP_HOSTS``), so RPC servers
  start there with manymap installed.
- ``pytest``: the block is a pytest module (it uses the test fixtures); it is
  run with ``python -m pytest``.

A block may import only what the integration session installs (the family,
numpy, scipy, pathos), and the text before it names each such extra package
(checked too).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from manymap_testhosts import SSHServer, write_ssh_config

ROOT = Path(__file__).resolve().parents[1]
FLAGS = {"ssh", "pytest"}
#: the host names the docs use, all pointed at the test sshd
DOC_HOSTS = ("node7", "lab", "gateway")
TIMEOUT = 240

_MARKER = r"(?:^<!--\s*docs-test:(?P<flags>[^>]*?)-->[ \t]*\n(?:[ \t]*\n)*)?"  # flags, then blank lines
_BLOCK = re.compile(_MARKER + r"^```python[ \t]*\n(?P<code>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    code: str
    flags: frozenset[str]

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _sources() -> list[Path]:
    return [
        *sorted((ROOT / "docs").rglob("*.md")),
        ROOT / "README.md",
        *sorted((ROOT / "packages").glob("*/README.md")),
    ]


def _blocks() -> list[Block]:
    blocks = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))  # the line of the opening fence
            flags = frozenset((match.group("flags") or "").split())
            blocks.append(Block(path, line, match.group("code"), flags))
    return blocks


BLOCKS = _blocks()


def test_the_blocks_are_found() -> None:
    """Every Python fence is a ```python block this test sees, with known flags only."""
    assert len(BLOCKS) >= 20, [block.name for block in BLOCKS]
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        found = sum(1 for block in BLOCKS if block.path == path)
        assert text.count("```python\n") == found, f"{path}: a ```python block not matched by the test"
        for other in ("```py\n", "```python3\n", "```pycon\n", "```Python\n"):
            assert other not in text, f"{path}: use ```python (run by this test) or ```console"
    for block in BLOCKS:
        assert block.flags <= FLAGS, f"{block.name}: unknown docs-test flags {sorted(block.flags - FLAGS)}"


def _third_party_imports(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name != "manymap"}


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_block_says_its_extra_packages(block: Block) -> None:
    """A block importing more than the family and the stdlib names the package in the text before it."""
    text = block.path.read_text(encoding="utf-8")
    before = "\n".join(text.splitlines()[: block.line])
    for name in _third_party_imports(block.code):
        assert name in before, f"{block.name} imports {name}, which the text before it does not mention"


@pytest.fixture
def doc_hosts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment pointing the docs' host names at the test sshd, with this Python registered for them."""
    sshd: SSHServer = request.getfixturevalue("sshd")
    where = tmp_path_factory.mktemp("doc-hosts")
    config = write_ssh_config(where / "ssh_config", [(host, sshd.client_options()) for host in DOC_HOSTS])
    registry = where / "hosts.toml"
    registry.write_text(
        "".join(
            f'[hosts.{host}]\nssh = "{host}"\npython = "{sys.executable}"\nworkers = 2\n\n'
            for host in DOC_HOSTS
        )
    )
    return {"MANYMAP_SSH_CONFIG": str(config), "MANYMAP_HOSTS": str(registry)}


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_block_runs_as_written(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env = dict(os.environ)
    for key in ("MANYMAP_HOSTS", "MANYMAP_SSH_CONFIG"):  # the user's own hosts play no part
        env.pop(key, None)
    if "ssh" in block.flags:
        env.update(request.getfixturevalue("doc_hosts"))
    if "pytest" in block.flags:
        script = tmp_path / "test_block.py"
        argv = [
            sys.executable,
            "-W",
            "error::RuntimeWarning",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(script),
        ]
    else:
        script = tmp_path / "block.py"
        argv = [sys.executable, "-W", "error::RuntimeWarning", str(script)]
    script.write_text(block.code, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    try:
        done = subprocess.run(
            argv, cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"{block.name} did not finish within {TIMEOUT} s: {expired.stdout!r} {expired.stderr!r}")
    output = f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{block.name} exited {done.returncode}\n{output}"
