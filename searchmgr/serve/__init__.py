"""``searchmgr serve``: a live service over run stores, its page, and a person's commands.

Needs the ``serve`` extra (FastAPI, uvicorn): ``pip install 'searchmgr[serve]'``.
"""

from searchmgr.serve.server import Service, ServeError, ServeSettings, serve, start_service

__all__ = ["Service", "ServeError", "ServeSettings", "serve", "start_service"]
