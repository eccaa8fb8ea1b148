"""The `zoolab` command.

    zoolab serve [--host H] [--port P] [--token T] [--no-worker]   server + a supervised local worker
    zoolab worker [--name N] [--until-empty]                       a worker alone, on the same database
    zoolab db upgrade | current | revision -m MSG                  the database schema (app/migrate.py)
    zoolab data [DATASET ...]                                      the datasets present, fetched, or what to do
    zoolab launch PRESET [--epochs N] [--set key=value ...] [--wait] | runs | show ID | cancel ID | wait ID
                                                                   a terminal client of the REST API (app/client.py)
"""

import argparse
import logging
import os
import signal
import sys

# An idle keep-alive connection is closed by whichever side times out first; if the server
# closes it just as a client reuses it, that request fails (httpx: ReadError). So the server
# waits longer than its clients do: httpx keeps idle connections 5 s, Firefox 115 s,
# Chromium up to 300 s (uvicorn's own default is 5 s, the same as httpx's: a race).
KEEP_ALIVE_SECONDS = 330


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _serve(args) -> int:
    if args.token:
        os.environ["ZOOLAB_TOKEN"] = args.token
    for key in ("host", "port"):
        if getattr(args, key) is not None:
            os.environ[f"ZOOLAB_{key.upper()}"] = str(getattr(args, key))
    import uvicorn

    from app.db import get_engine
    from app.settings import get_settings
    from app.supervisor import Supervisor

    settings = get_settings()
    if settings.host not in LOOPBACK and not (settings.host.startswith("127.") or settings.token or args.insecure):
        print(f"zoolab: refusing to serve on {settings.host} without a token: anyone who reaches this machine "
              "could launch runs on it. Set ZOOLAB_TOKEN (or --token T), or pass --insecure if the network is "
              "yours alone.", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    get_engine()
    supervisor = None if args.no_worker else Supervisor(settings)
    if supervisor:
        supervisor.start()
    print(f"zoolab: dashboard at http://{settings.host}:{settings.port}/  (API docs at /docs)", flush=True)
    # uvicorn shuts down gracefully on SIGTERM, then raises SIGTERM again; with the default
    # action that would end the process here and orphan the worker with its run still
    # `running`. As an exception it unwinds through `finally`, which stops the worker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        # Open event streams never end by themselves: without a graceful-shutdown limit a
        # dashboard left open would keep the server (and its worker) up after SIGTERM.
        uvicorn.run("app.main:app", host=settings.host, port=settings.port, log_level="warning",
                    timeout_graceful_shutdown=3, timeout_keep_alive=KEEP_ALIVE_SECONDS)
    finally:
        if supervisor:
            supervisor.stop()
    return 0


def _worker(args) -> int:
    from app import worker  # imports torch: only this command loads it, never the server
    return worker.run(args)


def _client(args) -> int:
    from app import client
    return client.main(args.command, args)


def _db(args) -> int:
    from app import migrate
    from app.db import make_engine
    from app.settings import get_settings

    engine = make_engine(get_settings().database_url)
    where = engine.url.render_as_string(hide_password=True)
    if args.action == "upgrade":
        was = migrate.upgrade(engine)
        print(f"{where}: at revision {migrate.head()} (was {was or 'new'})")
    elif args.action == "current":
        print(f"{where}: revision {migrate.current(engine) or 'none'}; this zoolab's: {migrate.head()}")
    else:
        if not args.message:
            raise SystemExit("zoolab db revision needs -m MESSAGE")
        migrate.revision(engine, args.message)
    return 0


def _data(args) -> int:
    from app.preflight import check

    try:
        ok, report = check(args.datasets)
    except ValueError as e:
        print(f"zoolab data: {e}", file=sys.stderr)
        return 2
    print(report, file=sys.stdout if ok else sys.stderr, flush=True)
    return 0 if ok else 1


def _client_commands(sub) -> None:
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--url", help="the server (default ZOOLAB_URL, else http://ZOOLAB_HOST:ZOOLAB_PORT)")
    server.add_argument("--token", help="its token (default ZOOLAB_TOKEN)")
    launch = sub.add_parser("launch", parents=[server], help="queue a run of PRESET; prints its id")
    launch.add_argument("preset", help="a preset id (GET /zoo)")
    launch.add_argument("--epochs", type=int)
    launch.add_argument("--name")
    launch.add_argument("--parent", type=int, help="the run this one is derived from")
    launch.add_argument("--seeds", type=int, help="queue one run per seed 0..N-1, as a group")
    launch.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config key; values are JSON "
                                                                              "or text (repeatable)")
    launch.add_argument("--wait", action="store_true", help="then follow it, as `zoolab wait`")
    runs = sub.add_parser("runs", parents=[server], help="list runs")
    runs.add_argument("--status")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--filter", action="append", metavar="KEY=VALUE", help="e.g. config.lr=0.001 (repeatable)")
    for name, text in (("show", "a run and its epochs"), ("cancel", "cancel a run"),
                       ("wait", "follow a run until it ends; exit code: how it ended")):
        command = sub.add_parser(name, parents=[server], help=text)
        command.add_argument("id", type=int)
    for name in ("launch", "runs", "show", "cancel", "wait"):
        sub.choices[name].set_defaults(func=_client)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="zoolab", description="Launch, watch and compare training runs of a model zoo.")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="the server and one supervised local worker")
    serve.add_argument("--host", help="bind address (default 127.0.0.1, ZOOLAB_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8000, ZOOLAB_PORT)")
    serve.add_argument("--token", help="require this bearer token for changes (ZOOLAB_TOKEN)")
    serve.add_argument("--no-worker", action="store_true", help="do not start a local worker")
    serve.add_argument("--insecure", action="store_true", help="serve beyond 127.0.0.1 without a token")
    serve.set_defaults(func=_serve)
    worker = sub.add_parser("worker", help="a worker alone, on the database of ZOOLAB_DATABASE_URL")
    worker.add_argument("--name", help="worker name shown in GET /workers (default host-pid)")
    worker.add_argument("--until-empty", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(func=_worker)
    db = sub.add_parser("db", help="the database schema: upgrade it, show its revision, or (developers) "
                                   "write a new migration")
    db.add_argument("action", choices=("upgrade", "current", "revision"))
    db.add_argument("-m", "--message", help="what the new revision changes (for `revision`)")
    db.set_defaults(func=_db)
    data = sub.add_parser("data", help="find the datasets a command needs; fetch missing ones (ZOOLAB_DOWNLOAD) "
                                       "or say what is missing, where it looked and what to do")
    data.add_argument("datasets", nargs="*", metavar="DATASET", help="default: every dataset")
    data.set_defaults(func=_data)
    _client_commands(sub)
    args = p.parse_args(argv)
    from app.migrate import SchemaError
    try:
        return args.func(args)
    except SchemaError as e:
        print(f"zoolab: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
