"""The HTTP API and the page (FastAPI): reads run stores read-only, writes nothing but commands.

Routes (``{run}`` is an id from ``GET /api/runs``)::

    GET  /api/runs
    GET  /api/runs/{run}                     summary
    GET  /api/runs/{run}/tree[?after=REV]    nodes (changed after revision REV), best and fixed paths
    GET  /api/runs/{run}/nodes/{id}          the node panel
    GET  /api/runs/{run}/schedule            the best schedule's export JSON (a download)
    GET  /api/runs/{run}/commands
    POST /api/runs/{run}/nodes/{id}/children {"recipe": {...}, "note": "..."}  202, or 422 with reasons
    POST /api/runs/{run}/nodes/{id}/close
    POST /api/runs/{run}/pause | resume | stop

Bad requests get a 4xx with ``{"detail": message}``. Writes need ``Content-Type:
application/json`` (a page elsewhere cannot post a simple form here) and, when the
service has a token, ``Authorization: Bearer TOKEN``. No CORS headers are sent, so
other origins cannot read the API; on a loopback address, requests naming another
host are refused (DNS rebinding).
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from searchmgr import tree as T
from searchmgr.commands import NOTE_MAX_CHARS, CommandError, verify_change, verify_child
from searchmgr.schedule import ScheduleError, schedule_of
from searchmgr.serve import runs as R
from searchmgr.store import CommandKind, CommandStatus, Node, NodeNotFound, NodeStatus, StoreError, TreeStore
from searchmgr.surface import ActionSurface
from searchmgr.tasks import TaskError, make_task

STATIC = resources.files("searchmgr.serve") / "static"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class ApiError(Exception):
    def __init__(self, status: int, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.detail, self.extra = status, detail, extra


def _json_error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


class Guard:
    """Pure ASGI middleware: body size limit, Host check on loopback, security headers on every answer."""

    def __init__(self, app: Callable, *, max_body_bytes: int, loopback: bool):
        self.app, self.max_body, self.loopback = app, max_body_bytes, loopback

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_secure(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + SECURITY_HEADERS}
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.loopback:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in LOOPBACK:
                return await _json_error(400, f"this service answers requests for 127.0.0.1 or localhost, "
                                              f"not {host[:100]!r}")(scope, receive, send_secure)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return await self._too_large(scope, receive, send_secure)
        body, more = b"", True
        while more:  # read the body here, up to the limit, then hand it on
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return await self._too_large(scope, receive, send_secure)
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_secure)

    async def _too_large(self, scope: dict, receive: Callable, send: Callable) -> None:
        await _json_error(413, f"request body over the limit of {self.max_body} bytes")(scope, receive, send)


@dataclass
class Service:
    """What every route shares: the runs served, the token writes need, and the surfaces built so far."""

    runs: dict[str, R.Run]
    token: str | None = None
    surfaces: dict[str, ActionSurface] = field(default_factory=dict)
    surfaces_lock: threading.Lock = field(default_factory=threading.Lock)

    def run_of(self, run: str) -> R.Run:
        if run not in self.runs:
            raise ApiError(404, f"no run {run[:100]!r}; runs are {sorted(self.runs)}")
        return self.runs[run]

    def surface_of(self, run: R.Run, row: dict) -> ActionSurface:
        with self.surfaces_lock:
            if run.id not in self.surfaces:  # the task object is only needed for its surface (and constraints)
                try:
                    self.surfaces[run.id] = make_task(row["task"], row["config"]["task_options"]).surface
                except TaskError as e:
                    raise ApiError(409, f"cannot verify children of run {run.id} here: {e}") from None
            return self.surfaces[run.id]

    async def write_body(self, request: Request, allowed: set[str]) -> dict:
        """Check the token and the content type, then parse a JSON object with only ``allowed`` keys."""
        if self.token is not None:
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                raise ApiError(401, "this service needs its token for writes: send 'Authorization: Bearer TOKEN' "
                                    "(the token was printed when the service started, or is in its token variable)")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(415, "send the request body as JSON with 'Content-Type: application/json'")
        raw = await request.body()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ApiError(400, f"malformed JSON: {e}") from None
        if not isinstance(data, dict):
            raise ApiError(400, f"expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ApiError(400, f"unknown field(s) {unknown[:5]}; this route takes {sorted(allowed) or 'none'}")
        return data


def _service(request: Request) -> Service:
    return request.app.state.service


def node_id_of(text: str) -> int:
    if not text.isdigit() or len(text) > 12:
        raise ApiError(404, f"no node {text[:30]!r}; node ids are positive integers")
    return int(text)


def queue(run: R.Run, kind: CommandKind, node_id: int | None = None, payload: Any = None) -> int:
    with TreeStore.for_commands(run.db) as store:
        return store.queue_command(store.search()["id"], kind, node_id, payload)


def refuse_unless(run: R.Run, store: TreeStore, search_id: int, kind: CommandKind) -> R.RunView:
    """The run's state; a 409 with the reason when the run cannot apply ``kind`` now."""
    view = R.view_of(run, store, search_id)
    why = view.refusal(kind)
    if why is not None:
        raise ApiError(409, f"run {run.id}: {why}", run_status=view.status.value)
    return view


def queued_children(store: TreeStore, search_id: int, parent: Node) -> list[dict]:
    """The recipes of children of ``parent`` queued and not yet applied: a second one alike is a duplicate."""
    return [{**parent.recipe, **{k: v for k, v in c.payload["recipe"].items() if k in parent.recipe}}
            for c in store.commands(search_id, CommandStatus.QUEUED)
            if c.kind is CommandKind.CHILD and c.node_id == parent.id and isinstance(c.payload, dict)
            and isinstance(c.payload.get("recipe"), dict)]


# errors: always a message, never a traceback ----------------------------------------
async def _api_error(request: Request, e: ApiError) -> JSONResponse:
    return _json_error(e.status, e.detail, **e.extra)


async def _bad_request(request: Request, e: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:5])
    return _json_error(400, f"bad request: {problems}")


async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
    return _json_error(e.status_code, str(e.detail))


async def _store_error(request: Request, e: StoreError) -> JSONResponse:
    return _json_error(404 if isinstance(e, NodeNotFound) else 409, str(e))


ERROR_HANDLERS = ((ApiError, _api_error), (RequestValidationError, _bad_request),
                  (StarletteHTTPException, _http_error), (StoreError, _store_error))
routes = APIRouter()


# reads --------------------------------------------------------------------------------
@routes.get("/api/runs")
def list_runs(request: Request) -> JSONResponse:
    out = []
    for r in _service(request).runs.values():
        try:
            out.append(R.summary(r))
        except StoreError as e:  # one unreadable run does not hide the others
            out.append({"id": r.id, "path": str(r.path), "error": str(e)})
    return JSONResponse({"runs": out})


@routes.get("/api/runs/{run}")
def get_run(run: str, request: Request) -> JSONResponse:
    return JSONResponse(R.summary(_service(request).run_of(run)))


@routes.get("/api/runs/{run}/tree")
def get_tree(run: str, request: Request, after: str | None = None) -> JSONResponse:
    if after is not None and (not after.isdigit() or len(after) > 15):
        raise ApiError(400, f"after={after[:30]!r} must be a revision number (the 'revision' of a tree answer)")
    return JSONResponse(R.tree(_service(request).run_of(run), int(after) if after is not None else None))


@routes.get("/api/runs/{run}/nodes/{node}")
def get_node(run: str, node: str, request: Request) -> JSONResponse:
    return JSONResponse(R.node_detail(_service(request).run_of(run), node_id_of(node)))


@routes.get("/api/runs/{run}/commands")
def get_commands(run: str, request: Request) -> JSONResponse:
    return JSONResponse(R.commands(_service(request).run_of(run)))


@routes.get("/api/runs/{run}/schedule")
def get_schedule(run: str, request: Request) -> Response:
    r = _service(request).run_of(run)
    with R.snapshot(r) as store:
        try:
            schedule = schedule_of(store, r.path)
        except ScheduleError as e:
            raise ApiError(409, str(e)) from None
    return Response(json.dumps(R.finite(schedule.to_dict()), indent=2), media_type="application/json",
                    headers={"content-disposition": f'attachment; filename="{r.id}-schedule.json"'})


# writes: commands only ----------------------------------------------------------------
@routes.post("/api/runs/{run}/nodes/{node}/children")
async def post_child(run: str, node: str, request: Request) -> JSONResponse:
    service = _service(request)
    r, nid = service.run_of(run), node_id_of(node)
    data = await service.write_body(request, {"recipe", "note"})
    recipe, note = data.get("recipe"), data.get("note", "")
    if not isinstance(recipe, dict):
        raise ApiError(400, "'recipe' must be an object of knob values, e.g. {\"recipe\": {\"lr\": 0.002}}")
    if not isinstance(note, str) or len(note) > NOTE_MAX_CHARS:
        raise ApiError(400, f"'note' must be a string of at most {NOTE_MAX_CHARS} characters")
    with R.snapshot(r) as store:
        row = store.search()
        nodes = store.nodes(row["id"])
        index = T.by_id(nodes)
        if nid not in index:
            raise ApiError(404, f"run {r.id} has no node {nid}")
        view = refuse_unless(r, store, row["id"], CommandKind.CHILD)
        verdict, reasons = _verify(service.surface_of(r, row), store, row, view, nodes, index[nid], recipe, note)
    if not verdict.ok:
        raise ApiError(422, "the verifier rejected this child: " + "; ".join(reasons), reasons=reasons)
    cid = queue(r, CommandKind.CHILD, nid, {"recipe": recipe, "note": note})
    when = ("it applies at the run's next evaluation boundary" if view.supervised else
            "the search trains it next" if view.status.live else
            f"the search is {view.status.value}: it is trained when the run is resumed "
            f"(searchmgr explore --resume {r.path})")
    return JSONResponse({"command": cid, "status": "queued", "parent": nid, "recipe": verdict.recipe,
                         "message": f"queued as command {cid}; {when}"}, status_code=202)


def _verify(surface: ActionSurface, store: TreeStore, row: dict, view: R.RunView, nodes: list[Node], parent: Node,
            recipe: dict, note: str) -> tuple[Any, list[str]]:
    """A person's child of ``parent`` through the verifier (a supervised run: a change of its segment in training)."""
    queued = queued_children(store, row["id"], parent)
    try:
        if view.supervised:  # a recipe change for the segment in training, applied at its next boundary
            if parent.status is not NodeStatus.RUNNING:
                raise CommandError(f"a supervised run changes the recipe of its segment in training, "
                                   f"not node {parent.id} ({parent.status.value})")
            return verify_change(surface, parent.recipe, recipe, note, queued)
        siblings = [c.recipe for c in T.children(nodes, parent.id)] + queued
        return verify_child(surface, parent, siblings, recipe, note, max_depth=row["config"]["max_depth"])
    except CommandError as e:
        raise ApiError(409, str(e)) from None


@routes.post("/api/runs/{run}/nodes/{node}/close")
async def post_close(run: str, node: str, request: Request) -> JSONResponse:
    service = _service(request)
    r, nid = service.run_of(run), node_id_of(node)
    await service.write_body(request, set())
    with R.snapshot(r) as store:
        sid = store.search()["id"]
        known = {n.id for n in store.nodes(sid)}
        if nid not in known:
            raise ApiError(404, f"run {r.id} has no node {nid}")
        refuse_unless(r, store, sid, CommandKind.CLOSE)
    cid = queue(r, CommandKind.CLOSE, nid)
    return JSONResponse({"command": cid, "status": "queued"}, status_code=202)


def _control(kind: CommandKind) -> Callable:
    async def post(run: str, request: Request) -> JSONResponse:
        service = _service(request)
        r = service.run_of(run)
        await service.write_body(request, set())
        with R.snapshot(r) as store:
            refuse_unless(r, store, store.search()["id"], kind)
        cid = queue(r, kind)
        return JSONResponse({"command": cid, "status": "queued"}, status_code=202)
    return post


for _kind in (CommandKind.PAUSE, CommandKind.RESUME, CommandKind.STOP):
    routes.post(f"/api/runs/{{run}}/{_kind.value}")(_control(_kind))


# the page -----------------------------------------------------------------------------
@routes.get("/")
def index() -> FileResponse:
    return FileResponse(Path(str(STATIC / "index.html")), headers={"cache-control": "no-cache"})


def create_app(runs: dict[str, R.Run], *, token: str | None = None, max_body_bytes: int = 64 * 1024,
               loopback: bool = True) -> Callable:
    """The service over ``runs`` (see :func:`searchmgr.serve.runs.name_runs`). ``token``: required for writes."""
    app = FastAPI(title="searchmgr", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = Service(runs, token)
    for error, handler in ERROR_HANDLERS:
        app.add_exception_handler(error, handler)
    app.include_router(routes)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return Guard(app, max_body_bytes=max_body_bytes, loopback=loopback)
