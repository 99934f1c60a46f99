"""A live jobs server for the tests: the real `jobsctl serve` process.

Environment (test/clients/python.test.ts sets it; `npm test` runs that):
  DATABASE_URL  a migrated PostgreSQL database of our own (the server does not migrate)
  NODE          Node 24 (the checkout's node_modules/.bin/node)
  JOBS_ROOT     the checkout (default: three directories up)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import pytest

PYTHON_CLIENT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PYTHON_CLIENT))

ROOT = Path(os.environ.get("JOBS_ROOT") or PYTHON_CLIENT.parent.parent)
START_TIMEOUT = 60.0


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(
            f"{name} is not set: run these tests through `npm test` (test/clients/python.test.ts), "
            "or set DATABASE_URL (a migrated database) and NODE (Node 24) yourself",
            returncode=2,
        )
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`jobsctl serve` on 127.0.0.1:port, as an operator would run it."""

    def __init__(self, port: int, database_url: str) -> None:
        self.port = port
        self.database_url = database_url
        self.process: Optional[subprocess.Popen[str]] = None
        self.output: List[str] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "ServerProcess":
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "MIGRATE_ON_START": "false",
            "LOG_LEVEL": "warn",
            # Idle watch streams get heartbeats, so the client sees them too.
            "WATCH_HEARTBEAT_SECONDS": "1",
        }
        self.process = subprocess.Popen(
            [_required("NODE"), str(ROOT / "bin" / "jobsctl.js"), "serve"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()

        def pump(stream) -> None:  # type: ignore[no-untyped-def]
            for line in stream:
                self.output.append(line.rstrip("\n"))
                if "jobs is serving" in line:
                    ready.set()

        threading.Thread(target=pump, args=(self.process.stdout,), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"server did not start on port {self.port}:\n" + "\n".join(self.output)
                )
        return self

    def stop(self) -> int:
        """SIGTERM (the server drains and exits); returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


def create_token(name: str, scopes: str = "jobs:read,jobs:write") -> str:
    """A service token made the way an operator makes one: `jobsctl tokens create`."""
    result = subprocess.run(
        [
            _required("NODE"),
            str(ROOT / "bin" / "jobsctl.js"),
            "tokens",
            "create",
            "--principal",
            "service",
            "--name",
            name,
            "--scopes",
            scopes,
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": _required("DATABASE_URL"), "LOG_LEVEL": "warn"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"jobsctl tokens create failed ({result.returncode}):\n{result.stderr}")
    token = result.stdout.strip()
    assert token and "\n" not in token, f"expected the token alone on stdout, got {result.stdout!r}"
    return token


@dataclass(frozen=True)
class Tokens:
    executor: str  # service "py-executor": claims, heartbeats, completes, cancels
    scheduler: str  # service "py-scheduler": creates jobs and requests cancellations


@pytest.fixture(scope="session")
def database_url() -> str:
    return _required("DATABASE_URL")


@pytest.fixture(scope="session")
def tokens(database_url: str) -> Tokens:
    return Tokens(executor=create_token("py-executor"), scheduler=create_token("py-scheduler"))


@pytest.fixture(scope="session")
def server(database_url: str):  # type: ignore[no-untyped-def]
    process = ServerProcess(free_port(), database_url).start()
    yield process
    if process.process is not None:
        assert process.stop() == 0, "\n".join(process.output)


@pytest.fixture()
def start_server(database_url: str):  # type: ignore[no-untyped-def]
    """Starts more servers on the same database; stops whatever is left at the end."""
    started: List[ServerProcess] = []

    def start(port: Optional[int] = None) -> ServerProcess:
        process = ServerProcess(port or free_port(), database_url).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Waits for something that must happen; fails (does not time anything) if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)
