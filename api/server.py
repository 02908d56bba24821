"""``gridplan serve``: one uvicorn process (uvloop + httptools when installed) around create_app."""
from __future__ import annotations

import argparse
import os

from gridplan.api.settings import Settings


def _loop_and_http() -> tuple[str, str]:
    try:
        import uvloop  # noqa: F401
        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    try:
        import httptools  # noqa: F401
        http = "httptools"
    except ImportError:
        http = "h11"
    return loop, http


def serve(host: str = "127.0.0.1", port: int = 8000, data_dir: str = "gridplan-data",
          database_url: str | None = None, **overrides) -> None:
    """Run the HTTP service with uvicorn until it is stopped.

    Settings come from ``GRIDPLAN_*`` environment variables, then these arguments and
    ``overrides``. Files the service creates are readable by its own user only (umask 077).
    """
    import uvicorn

    from gridplan.api.app import create_app

    os.umask(0o077)  # the data dir, database, uploads and outputs are the service's alone (runners inherit it)
    settings = Settings.from_env(data_dir=data_dir, database_url=database_url, **overrides)
    loop, http = _loop_and_http()
    uvicorn.run(create_app(settings), host=host, port=port, loop=loop, http=http, access_log=False,
                log_level=settings.log_level, timeout_graceful_shutdown=10)


def main(argv: list[str] | None = None) -> None:
    """Run the service from the command line (``--host``, ``--port``, ``--data-dir``, ``--database-url``)."""
    ap = argparse.ArgumentParser(prog="python -m api.server", description="run the gridplan HTTP service")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--data-dir", default=os.environ.get("GRIDPLAN_DATA_DIR", "gridplan-data"))
    ap.add_argument("--database-url", default=os.environ.get("GRIDPLAN_DATABASE_URL"))
    a = ap.parse_args(argv)
    serve(a.host, a.port, a.data_dir, a.database_url)


if __name__ == "__main__":
    main()
