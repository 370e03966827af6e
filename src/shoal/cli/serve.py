"""``shoal serve`` and ``shoal keys``: one graph over HTTP, and the API keys it accepts."""

from __future__ import annotations

import ipaddress
import signal
from pathlib import Path
from typing import Annotated

import typer

from shoal.cli._common import _fail, _load
from shoal.graphs.runtime import DEFAULT_CONCURRENCY
from shoal.observability.logging import configure_cli_logging, flush_repeats, get_logger


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    graph_path: Annotated[Path, typer.Argument(metavar="GRAPH", help="Graph YAML file.")],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
    keys: Annotated[Path | None, typer.Option(
        help="Keys file from `shoal keys add` (default: $SHOAL_KEYS, else .shoal/keys.json).")]
    = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Serve without API keys; allowed only on a loopback address.")] = False,
    max_body: Annotated[int, typer.Option(min=1, help="Largest request body in bytes (413 "
                                                       "above).")] = 1_048_576,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", "-c", min=1, help="Runs in flight at once; more requests wait.")]
    = DEFAULT_CONCURRENCY,
    graceful_timeout: Annotated[int, typer.Option(
        min=0, help="Seconds SIGTERM waits for requests in flight.")] = 30,
    log_level: Annotated[str, typer.Option(help="debug|info|warning|error.")] = "info",
) -> None:
    """Serve one graph over HTTP: /v1/runs, /v1/runs/stream, OpenAI-compatible
    /v1/chat/completions, /v1/review (a person's labels for the escalation ledger), /metrics,
    /healthz, /readyz. Every route but the health checks needs 'Authorization: Bearer KEY' (the
    review routes a key with the 'review' scope). Logs one JSON event per request (never a body)
    on stderr (a readable line on a terminal)."""
    from shoal.service.keys import (  # startup: shoal.service pulls in FastAPI
        KeysFileError,
        KeyStore,
        default_keys_path,
    )

    if log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        _fail(f"unknown log level {log_level!r}")
        raise typer.Exit(2)
    configure_cli_logging(log_level)
    store: KeyStore | None = None
    if no_auth:
        if not _loopback(host):
            _fail(f"--no-auth is allowed only on a loopback address such as 127.0.0.1, "
                  f"not {host!r}")
            raise typer.Exit(2)
    else:
        path = keys or default_keys_path()
        if not path.is_file():
            _fail(f"{path}: no keys file; create one with `shoal keys add NAME --keys {path}` "
                  "(or serve on 127.0.0.1 with --no-auth)")
            raise typer.Exit(2)
        try:
            store = KeyStore(path)
        except KeysFileError as exc:
            _fail(exc.message)
            raise typer.Exit(2) from None
        if not store.keys():
            _fail(f"{path}: holds no keys; add one with `shoal keys add NAME --keys {path}`")
            raise typer.Exit(2)
    graph = _load(graph_path)

    import uvicorn  # optional: the 'serve' extra, needed only once the graph has loaded

    from shoal.service.app import create_app  # startup: FastAPI loads only when serving

    api = create_app(graph, keys=store, max_body=max_body, concurrency=concurrency,
                     base_dir=graph_path.parent)
    server = uvicorn.Server(uvicorn.Config(
        api, host=host, port=port, access_log=False, log_level="warning", server_header=False,
        timeout_graceful_shutdown=graceful_timeout))
    log = get_logger()
    log.info("serve_starting", graph=graph.name, host=host, port=port,
             auth=store is not None, max_body=max_body, concurrency=concurrency)
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; a handler
    # of ours takes it, so that a SIGTERM ends the command with exit code 0.
    previous = {sig: signal.signal(sig, lambda *_: None)
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        flush_repeats()
    if not server.started:
        raise typer.Exit(1)
    log.info("serve_stopped", graph=graph.name)


keys_app = typer.Typer(help="API keys of `shoal serve` (only their SHA-256 is stored).",
                       no_args_is_help=True)
_KeysOption = Annotated[Path | None, typer.Option(
    "--keys", help="Keys file (default: $SHOAL_KEYS, else .shoal/keys.json).")]


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="Who or what the key is for (shown in logs).")],
    graphs: Annotated[list[str] | None, typer.Option(
        "--graph", help="A graph name (the YAML's name:) the key may call; repeat for more. "
                        "Default: any graph (*).")] = None,
    scopes: Annotated[list[str] | None, typer.Option(
        "--scope", help="What the key may do: 'run' (the run and chat routes) or 'review' (the "
                        "/v1/review routes); repeat for both. Default: run.")] = None,
    keys: _KeysOption = None,
) -> None:
    """Make a random key, store only its hash (mode 0600) and print the key once on stdout."""
    from shoal.service.keys import (  # startup: shoal.service pulls in FastAPI
        ANY_GRAPH,
        KeysFileError,
        add_key,
        check_scopes,
        default_keys_path,
    )

    path = keys or default_keys_path()
    try:
        key = add_key(path, name, graphs, scopes)
    except KeysFileError as exc:
        _fail(exc.message)
        raise typer.Exit(2) from None
    except ValueError as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    _fail(f"added key {name!r} for graphs {', '.join(graphs or [ANY_GRAPH])} (scopes "
          f"{', '.join(check_scopes(scopes))}) to {path}; it is shown only now:")
    typer.echo(key)


@keys_app.command("list")
def keys_list(keys: _KeysOption = None) -> None:
    """One line per key: name, graphs, created, scopes (never the hash)."""
    from shoal.service.keys import (  # startup: shoal.service pulls in FastAPI
        KeysFileError,
        default_keys_path,
        read_keys,
    )

    path = keys or default_keys_path()
    if not path.exists():
        _fail(f"{path}: no keys file yet")
        return
    try:
        found = read_keys(path)
    except KeysFileError as exc:
        _fail(exc.message)
        raise typer.Exit(2) from None
    for key in found:
        typer.echo(f"{key.name}\t{','.join(key.graphs)}\t{key.created}\t{','.join(key.scopes)}")
    if not found:
        _fail(f"{path}: no keys")


@keys_app.command("remove")
def keys_remove(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    keys: _KeysOption = None,
) -> None:
    """Revoke a key (a running server stops accepting it at its next request)."""
    from shoal.service.keys import (  # startup: shoal.service pulls in FastAPI
        KeysFileError,
        default_keys_path,
        remove_key,
    )

    path = keys or default_keys_path()
    try:
        removed = remove_key(path, name)
    except KeysFileError as exc:
        _fail(exc.message)
        raise typer.Exit(2) from None
    if not removed:
        _fail(f"{path}: no key named {name!r}")
        raise typer.Exit(1)
    _fail(f"removed key {name!r} from {path}")
