"""The filters and sort orders of run listings (/runs, /runs.csv, /groups), the run config's
keys among them:

    ?status=finished&dataset=mnist&model=mnist-3fc-51k&q=bn
    ?config.lr=0.001                  a value (text keys: one or several, comma-separated)
    ?config.lr=0.0005..0.002          a range, inclusive; either end may be left out
    ?config.grad_clip=none            no value
    ?sort=config.lr&order=asc
    ?tag=baseline&tag=bn              runs that hold every tag given
    ?group=3f2a...                    the runs of one group of seeds (a group_key)

A query parameter that is none of these is refused with the list of valid ones, never ignored."""

import math
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import String, and_, cast, or_

from app.labels import MAX_TAGS, check_tag
from app.models import Run, Status
from trainer.config import DATASETS, RunConfig

# Keys of the run config that can be filtered and sorted on; model and dataset are columns.
CONFIG_KEYS = tuple(k for k in RunConfig.model_fields if k not in ("model", "name", "dataset", "layers"))
COLUMNS = ("id", "name", "model", "dataset", "status", "params", "best_test_acc", "final_test_acc",
           "epochs_done", "total_seconds", "images_per_second", "created_at")
SORTABLE = (*COLUMNS, *(f"config.{k}" for k in CONFIG_KEYS))
PLAIN = ("status", "dataset", "model", "q", "tag", "group")
PAGING = ("sort", "order", "limit", "offset")


def _is_number(key: str) -> bool:
    annotation = RunConfig.model_fields[key].annotation
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    return any(a in (int, float) for a in args)


NUMERIC = {k: _is_number(k) for k in CONFIG_KEYS}


def _refuse(loc: str, message: str):
    raise RequestValidationError([{"loc": ("query", loc), "msg": message, "type": "value_error"}])


def _number(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        _refuse(f"config.{key}", f"config.{key} takes a number, a range lo..hi or `none`; gets {text[:50]!r}")
    return value


def _config_condition(key: str, text: str):
    column = Run.config[key]
    if text == "none":
        return or_(column.as_string().is_(None), column.as_string() == "null")
    if NUMERIC[key]:
        number = column.as_float()
        if ".." in text:
            low, high = text.split("..", 1)
            parts = [number >= _number(key, low)] if low else []
            parts += [number <= _number(key, high)] if high else []
            if not parts:
                _refuse(f"config.{key}", f"config.{key}: a range needs at least one end (lo.., ..hi or lo..hi)")
            return and_(*parts)
        return number == _number(key, text)
    return column.as_string().in_([v for v in text.split(",") if v])


def _has_tag(tag: str):
    # Tags are stored as a JSON list of strings that hold no quote, backslash or %
    # (app/labels.py): the text '"tag"' in the list's JSON is exactly that element.
    return cast(Run.tags, String).like('%"' + tag.replace("_", "\\_") + '"%', escape="\\")


@dataclass
class RunFilter:
    status: Status | None = None
    dataset: str | None = None
    model: str | None = None
    q: str | None = None
    config: dict[str, str] | None = None
    tags: list[str] | None = None
    group: str | None = None

    def apply(self, query):
        if self.status:
            query = query.where(Run.status == self.status)
        if self.dataset:
            query = query.where(Run.dataset == self.dataset)
        if self.model:
            query = query.where(Run.model == self.model)
        if self.q:
            pattern = "%" + self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(or_(Run.name.ilike(pattern, escape="\\"), Run.model.ilike(pattern, escape="\\")))
        for key, text in (self.config or {}).items():
            query = query.where(_config_condition(key, text))
        for tag in self.tags or []:
            query = query.where(_has_tag(tag))
        if self.group:
            query = query.where(Run.group_key == self.group)
        return query


def run_filter(request: Request,
               tag: Annotated[list[str] | None, Query(description="runs that hold every tag given")] = None,
               group: Annotated[str | None, Query(pattern=r"^[0-9a-f]{16}$",
                                                  description="the runs of one group (a group_key)")] = None,
               ) -> RunFilter:
    """The request's filters (the plain ones are declared on each route, for the docs, and
    validated there); config.* parsed here; any other query parameter refused."""
    if len(tag or []) > MAX_TAGS:
        _refuse("tag", f"{len(tag)} tags given; at most {MAX_TAGS}")
    for text in tag or []:
        try:
            check_tag(text)
        except ValueError as e:
            _refuse("tag", str(e))
    allowed = {*PLAIN, *PAGING}
    config = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("config.") and key[7:] in CONFIG_KEYS:
            if "\x00" in value or len(value) > 200:
                _refuse(key, f"{key}: at most 200 characters, no NUL")
            if key[7:] in config:
                _refuse(key, f"{key} is given twice; use a range lo..hi or a comma-separated list")
            config[key[7:]] = value
            _config_condition(key[7:], value)  # refuse a bad value now, with its message
        elif key not in allowed:
            valid = ", ".join([*PLAIN, *PAGING, *(f"config.{k}" for k in CONFIG_KEYS)])
            _refuse(key, f"unknown filter {key[:60]!r}; valid: {valid}")
    params = request.query_params
    return RunFilter(status=params.get("status") or None, dataset=params.get("dataset") or None,
                     model=params.get("model") or None, q=params.get("q") or None, config=config,
                     tags=tag or None, group=group)


def order_by(sort: str, order: Literal["asc", "desc"]) -> list[Any]:
    if sort.startswith("config."):
        key = sort[7:]
        column = Run.config[key].as_float() if NUMERIC[key] else Run.config[key].as_string()
    else:
        column = getattr(Run, sort)
    direction = column.asc() if order == "asc" else column.desc()
    return [direction.nulls_last(), Run.id.asc() if order == "asc" else Run.id.desc()]


__all__ = ["CONFIG_KEYS", "DATASETS", "RunFilter", "SORTABLE", "order_by", "run_filter"]
