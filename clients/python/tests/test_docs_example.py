"""The Python example in docs/clients.md, run as printed against a live
server: the block between its python-example markers, with the server's
address in place of 127.0.0.1:50051 and a token in JOBS_TOKEN. It must print
what the page says it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import PYTHON_CLIENT, ROOT, ServerProcess, Tokens

DOC = ROOT / "docs" / "clients.md"


def _block(after: str) -> str:
    """The first fenced block after the line that contains `after`."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(after)
    match = re.compile(r"```[a-z]*\n(.*?)```", re.S).search(text, start)
    assert match, f"no code block after {after!r} in {DOC}"
    return match.group(1)


def test_the_docs_python_example_runs_as_printed(server: ServerProcess, tokens: Tokens) -> None:
    code = _block("<!-- python-example:begin")
    assert "127.0.0.1:50051" in code
    result = subprocess.run(
        [sys.executable, "-c", code.replace("127.0.0.1:50051", server.address)],
        cwd=PYTHON_CLIENT,  # where `jobs` and `jobs_client` import from, as after `pip install ./clients/python`
        env={**os.environ, "JOBS_TOKEN": tokens.executor, "PYTHONPATH": str(PYTHON_CLIENT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == _block("It prints:")
