"""Running the service: bind, choose the token, serve in the foreground or in a background thread."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import uvicorn
from pydantic import BaseModel, ConfigDict, Field

from searchmgr.config import ConfigError
from searchmgr.serve.app import create_app
from searchmgr.serve.runs import DB_NAME, name_runs
from searchmgr.rundir import RunLocked, claim_run
from searchmgr.store import StoreError, TreeStore


class ServeError(ConfigError):
    """Bad service settings or runs; the message says how to fix them."""


class ServeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="address to bind; anything but loopback requires a token for writes")
    port: int = Field(8470, ge=0, le=65535, description="TCP port (0: any free port)")
    token_env: str = Field("SEARCHMGR_SERVE_TOKEN", description="NAME of the environment variable holding the "
                           "write token (else one is generated and printed once when bound beyond loopback)")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="largest request body accepted (413 above)")

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def resolve_token(settings: ServeSettings) -> tuple[str | None, bool]:
    """The write token and whether it was generated here (then it must be shown to the user once)."""
    given = os.environ.get(settings.token_env)
    if given:
        return given, False
    if settings.loopback:
        return None, False
    return secrets.token_urlsafe(24), True


def check_runs(paths: Sequence[Path]) -> None:
    """Every path must be a run directory; an old store gets this version's migrations, by its owner only: the
    service takes the run's lock for the upgrade (and refuses a run a live process owns)."""
    for p in paths:
        if not (Path(p) / DB_NAME).exists():
            raise ServeError(f"{p} is not a run directory (no {DB_NAME}); give the out= of a `searchmgr explore`")
        try:
            TreeStore.read_only(Path(p) / DB_NAME).close()
        except StoreError:  # predates this version's migrations: upgrade once, as the run's owner
            try:
                claim_run(p).close()
            except RunLocked as e:
                raise ServeError(f"{p} predates this version's store and {e}; serve it once that process "
                                 "has ended (it upgrades the store as it opens it)") from None


@dataclass
class Service:
    """A bound, started service; :meth:`stop` ends it."""

    url: str
    token: str | None
    server: uvicorn.Server
    thread: threading.Thread | None = None

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)


def _bind(settings: ServeSettings) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        return socket.create_server((settings.host, settings.port), family=family)
    except OSError as e:
        raise ServeError(f"cannot bind {settings.host}:{settings.port} ({e.strerror}); choose another --port "
                         "or --host") from None


def _prepare(paths: Sequence[Path], settings: ServeSettings) -> tuple[uvicorn.Server, socket.socket, str,
                                                                      str | None, bool]:
    check_runs(paths)
    token, generated = resolve_token(settings)
    app = create_app(name_runs(paths), token=token, max_body_bytes=settings.max_body_bytes,
                     loopback=settings.loopback)
    sock = _bind(settings)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    return server, sock, f"http://{shown}:{port}/", token, generated


def _announce(url: str, token: str | None, generated: bool, settings: ServeSettings,
              echo: Callable[[str], None]) -> None:
    echo(f"searchmgr serve: {url}")
    if generated:  # printed once, here only; never stored or logged elsewhere
        echo(f"writes need the token {token} (open {url}#token={token}); set {settings.token_env} to choose it")
    elif token:
        echo(f"writes need the token in ${settings.token_env} (open {url}#token=<token>)")


def start_service(paths: Sequence[Path], settings: ServeSettings | None = None,
                  echo: Callable[[str], None] = print) -> Service:
    """Serve ``paths`` from a background thread (``explore --serve``); returns once it answers."""
    settings = settings or ServeSettings()
    server, sock, url, token, generated = _prepare(paths, settings)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="searchmgr-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ServeError(f"the service did not start on {url}")
        time.sleep(0.02)
    _announce(url, token, generated, settings, echo)
    return Service(url, token, server, thread)


def serve(paths: Sequence[Path], settings: ServeSettings | None = None,
          echo: Callable[[str], None] = print) -> None:
    """Serve ``paths`` in the foreground until interrupted (``searchmgr serve``)."""
    settings = settings or ServeSettings()
    server, sock, url, token, generated = _prepare(paths, settings)
    _announce(url, token, generated, settings, echo)
    server.run(sockets=[sock])
