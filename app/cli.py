"""The `zoolab` command.

    zoolab serve [--host H] [--port P] [--token T] [--no-worker]   server + a supervised local worker
    zoolab worker [--name N] [--until-empty]                       a worker alone, on the same database
    zoolab data [DATASET ...]                                      the datasets present, fetched, or what to do
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


def _serve(args) -> int:
    if args.token:
        os.environ["ZOOLAB_TOKEN"] = args.token
    for key in ("host", "port"):
        if getattr(args, key) is not None:
            os.environ[f"ZOOLAB_{key.upper()}"] = str(getattr(args, key))
    import uvicorn

    from app.config import get_settings
    from app.db import get_engine
    from app.supervisor import Supervisor

    settings = get_settings()
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
    # The worker lives in trainer/ (it imports torch; the server never does).
    os.execv(sys.executable, [sys.executable, "-m", "trainer.worker", *args.rest])


def _data(args) -> int:
    from app.preflight import check

    try:
        ok, report = check(args.datasets)
    except ValueError as e:
        print(f"zoolab data: {e}", file=sys.stderr)
        return 2
    print(report, file=sys.stdout if ok else sys.stderr, flush=True)
    return 0 if ok else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="zoolab", description="Launch, watch and compare training runs of a model zoo.")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="the server and one supervised local worker")
    serve.add_argument("--host", help="bind address (default 127.0.0.1, ZOOLAB_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8000, ZOOLAB_PORT)")
    serve.add_argument("--token", help="require this bearer token for changes (ZOOLAB_TOKEN)")
    serve.add_argument("--no-worker", action="store_true", help="do not start a local worker")
    serve.set_defaults(func=_serve)
    worker = sub.add_parser("worker", help="a worker alone, on the database of ZOOLAB_DATABASE_URL",
                            add_help=False)
    worker.add_argument("rest", nargs=argparse.REMAINDER, help="--name NAME, --until-empty, --help")
    worker.set_defaults(func=_worker)
    data = sub.add_parser("data", help="find the datasets a command needs; fetch missing ones (ZOOLAB_DOWNLOAD) "
                                       "or say what is missing, where it looked and what to do")
    data.add_argument("datasets", nargs="*", metavar="DATASET", help="default: every dataset")
    data.set_defaults(func=_data)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
