"""``gridplan keys``: create, list and revoke the API keys of ``gridplan serve``."""
from __future__ import annotations

import json
import os
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from gridplan.api.cli import _fail, console, out

keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys for `gridplan serve`.")


class Role(str, Enum):
    """The role of an API key: ``planner`` may do everything, ``reader`` only GET and lookup."""

    planner = "planner"
    reader = "reader"


@keys_app.command("create")
def keys_create(role: Role = typer.Option(..., "--role"),
                data_dir: Path = typer.Option(Path("gridplan-data"), "--data-dir"),
                database_url: Optional[str] = typer.Option(None, "--database-url")):
    """Create an API key; the key is printed alone on the last line (stored hashed)."""
    from gridplan.api.auth import create_key
    key = create_key(role.value, data_dir=str(data_dir), database_url=database_url)
    console.print(f"Created a {role.value} key (shown once; only its hash is stored):")
    print(key)


def _key_engine(data_dir: Path, database_url: Optional[str]):
    from gridplan.api.settings import Settings
    from gridplan.api.store import engine_for
    url = database_url or os.environ.get("GRIDPLAN_DATABASE_URL") or None
    return engine_for(Settings(data_dir=str(data_dir), database_url=url))


def _when(t: Optional[float]) -> str:
    return "never" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + "Z"


@keys_app.command("list")
def keys_list(data_dir: Path = typer.Option(Path("gridplan-data"), "--data-dir"),
              database_url: Optional[str] = typer.Option(None, "--database-url"),
              as_json: bool = typer.Option(False, "--json", help="Print the keys as JSON to stdout.")):
    """List API keys: id, role, created, last used, revoked (never the key or its hash)."""
    from gridplan.api.keyadmin import list_keys
    rows = list_keys(_key_engine(data_dir, database_url))
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title="API keys")
    for col in ("id", "role", "created", "last used", "revoked"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["role"], _when(r["created_at"]), _when(r["last_used"]), "yes" if r["revoked"] else "no")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id, as `gridplan keys list` shows it."),
                data_dir: Path = typer.Option(Path("gridplan-data"), "--data-dir"),
                database_url: Optional[str] = typer.Option(None, "--database-url")):
    """Revoke an API key: within a second no server sharing the database accepts it."""
    from gridplan.api.keyadmin import revoke_key
    kid = key_id[3:].split("_", 1)[0] if key_id.startswith("gp_") else key_id  # a whole key names its id too
    done = revoke_key(_key_engine(data_dir, database_url), kid)
    if done is None:
        _fail(1, f"no API key with id {kid!r} (see `gridplan keys list`)")
    console.print(f"Key {kid} {done}.")



def register(app: typer.Typer) -> None:
    """Add the ``keys`` command group to the CLI."""
    app.add_typer(keys_app, name="keys")
