"""The terminal client: `zoolab launch | runs | show | cancel | wait` drive a zoolab server
over its REST API, as the browser does — from a script, or from another machine.

    zoolab launch mnist-3fc-51k --epochs 3 --set lr=0.001 --set 'layers=["flatten", "linear 784 10"]'
    zoolab wait 14            # a live progress bar and a line per epoch; the exit code says how it ended
    zoolab runs --status running
    zoolab show 14 | zoolab cancel 14

The server is --url, else ZOOLAB_URL, else http://ZOOLAB_HOST:ZOOLAB_PORT (127.0.0.1:8000);
the token --token, else ZOOLAB_TOKEN. Exit codes (EXIT): 0 done (a run finished), 1 the run
failed, 2 the server refused the request (the message says why), 3 cancelled, 4 pruned,
5 no server answered, 6 the token is missing or wrong, 130 interrupted."""

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

EXIT = {"finished": 0, "failed": 1, "refused": 2, "cancelled": 3, "pruned": 4, "unreachable": 5,
        "unauthorized": 6}
TERMINAL = ("finished", "failed", "cancelled", "pruned")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class Refused(Exception):
    """The server answered with an error: `code` is the exit code, the message its words."""

    def __init__(self, code: int, message: str):
        self.code, self.message = code, message
        super().__init__(message)


def _describe(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(".".join(str(p) for p in d.get("loc", ()) if p != "body") + ": " + str(d.get("msg"))
                         if d.get("loc") else str(d.get("msg")) for d in detail if isinstance(d, dict))
    return str(detail)


class Client:
    def __init__(self, url: str | None = None, token: str | None = None):
        from app.settings import get_settings

        settings = get_settings()
        self.url = (url or os.environ.get("ZOOLAB_URL") or f"http://{settings.host}:{settings.port}").rstrip("/")
        token = token or settings.token
        self.http = httpx.Client(base_url=self.url, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"} if token else {})

    def request(self, method: str, path: str, **kwargs) -> Any:
        try:
            r = self.http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise Refused(EXIT["unreachable"], f"no zoolab server answers at {self.url} ({e}); start one with "
                                               "`zoolab serve`, or give --url / ZOOLAB_URL") from None
        if r.status_code == 401:
            raise Refused(EXIT["unauthorized"], "this server needs its token: --token T or ZOOLAB_TOKEN")
        if r.status_code >= 400:
            try:
                detail = _describe(r.json().get("detail"))
            except ValueError:
                detail = r.text[:500]
            raise Refused(EXIT["refused"], f"{method} {path}: {r.status_code}: {detail}")
        return r.json() if r.content else None


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """`--set key=value`: a JSON value (number, null, list, "text") or else plain text."""
    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise Refused(EXIT["refused"], f"--set takes key=value, gets {pair!r}")
        try:
            values[key.strip()] = json.loads(text)
        except ValueError:
            values[key.strip()] = text
    return values


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.2f}%"


def launch(client: Client, args) -> int:
    body = {"model": args.preset, **parse_sets(args.set or [])}
    for key in ("epochs", "name", "parent", "seeds"):
        if getattr(args, key, None) is not None:
            body[key] = getattr(args, key)
    run = client.request("POST", "/runs", json=body)
    ids = run.get("run_ids", [run["id"]])
    for run_id in ids:
        print(run_id)  # one id a line, for scripts: `id=$(zoolab launch ...)`
    err.print(f"queued {', '.join(f'#{i}' for i in ids)}: {run['name']} ({run['params']:,} parameters)")
    return wait(client, ids[0]) if args.wait else 0


def runs(client: Client, args) -> int:
    params = {"limit": args.limit, **({"status": args.status} if args.status else {})}
    params.update(dict(f.split("=", 1) for f in args.filter or [] if "=" in f))
    page = client.request("GET", "/runs", params=params)
    table = Table("id", "name", "model", "status", "epochs", "best", "final", "seconds", box=None)
    for r in page["items"]:
        table.add_row(str(r["id"]), r["name"], r["model"], r["status"], f"{r['epochs_done']}/{r['epochs_total']}",
                      _pct(r["best_test_acc"]), _pct(r["final_test_acc"]), f"{r['total_seconds']:.1f}")
    out.print(table)
    err.print(f"{len(page['items'])} of {page['total']} runs")
    return 0


def show(client: Client, args) -> int:
    run = client.request("GET", f"/runs/{args.id}")
    metrics = client.request("GET", f"/runs/{args.id}/metrics")
    out.print(f"#{run['id']} {run['name']} — {run['status']}" + (f": {run['error']}" if run["error"] else ""))
    out.print(f"{run['model']} on {run['dataset']}, {run['params']:,} parameters, seed {run['config'].get('seed')}"
              + (f", derived from #{run['parent_id']}" if run.get("parent_id") else ""))
    if run.get("changes"):
        out.print("changed from the preset: " + ", ".join(run["changes"]))
    table = Table("epoch", "train loss", "test loss", "test acc", "lr", "seconds", box=None)
    for e in metrics["epochs"]:
        table.add_row(str(e["epoch"]), f"{e['train_loss']:.4f}", f"{e['test_loss']:.4f}", _pct(e["test_acc"]),
                      f"{e['lr']:.3g}", f"{e['epoch_seconds']:.1f}")
    out.print(table)
    return EXIT.get(run["status"], 0) if run["status"] in TERMINAL else 0


def cancel(client: Client, args) -> int:
    run = client.request("POST", f"/runs/{args.id}/cancel")
    err.print(f"#{run['id']}: {'cancelling' if run['status'] == 'running' else run['status']}")
    return 0


def wait(client: Client, run_id: int) -> int:
    """Follow a run's events (from its first, so nothing is missed) until it ends."""
    run = client.request("GET", f"/runs/{run_id}")
    total = run["epochs_total"]
    columns = (TextColumn(f"#{run_id}"), BarColumn(), TextColumn("{task.description}"), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("waiting for a worker", total=total)
        last_id = 0
        while True:
            try:
                with client.http.stream("GET", f"/runs/{run_id}/events", params={"last_event_id": last_id},
                                        timeout=httpx.Timeout(30, read=60)) as stream:
                    for event in sse(stream):
                        kind, data = event.get("event"), event.get("data") or {}
                        last_id = event.get("id", last_id)
                        if kind == "progress":
                            bar.update(task, completed=data["epoch"], description=f"epoch {int(data['epoch']) + 1}"
                                       f"/{total} · train loss {data['train_loss'] or float('nan'):.4f}")
                        elif kind == "epoch":
                            bar.update(task, completed=data["epoch"])
                            bar.console.print(f"epoch {data['epoch']}/{total}: test acc {_pct(data['test_acc'])}, "
                                              f"test loss {data['test_loss']:.4f}, {data['epoch_seconds']:.1f} s")
                        elif kind == "status" and data.get("status") in TERMINAL:
                            status = data["status"]
                            bar.stop()
                            line = f"#{run_id} {status}" + (f": {data['error']}" if data.get("error") else "")
                            if status == "finished":
                                line += f" — best test accuracy {_pct(data.get('best_test_acc'))}"
                            (out if status == "finished" else err).print(line)
                            return EXIT[status]
                        elif kind == "deleted":
                            raise Refused(EXIT["refused"], f"run {run_id} was deleted")
            except httpx.TransportError:
                # the stream dropped (a server restart): reconnect and replay
                client.request("GET", "/health")


def sse(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Server-sent events as {id, event, data} (comments skipped, data parsed as JSON)."""
    event: dict[str, Any] = {}
    data: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if data or event:
                event["data"] = json.loads("\n".join(data)) if data else None
                if "id" in event:
                    event["id"] = int(event["id"])
                yield event
            event, data = {}, []
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field in ("id", "event", "retry"):
                event[field] = value


def main(command: str, args) -> int:
    client = Client(args.url, args.token)
    try:
        if command == "wait":
            return wait(client, args.id)
        return {"launch": launch, "runs": runs, "show": show, "cancel": cancel}[command](client, args)
    except Refused as e:
        err.print(f"zoolab {command}: {e.message}")
        return e.code
    except KeyboardInterrupt:
        return 130
    finally:
        client.http.close()
