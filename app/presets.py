"""Presets a run can start from: the zoo's (trainer/zoo.py, the notes' experiments) and the
ones users saved (the `preset` table), behind one lookup."""

import re

from sqlalchemy import select
from sqlmodel import Session

from app.models import UserPreset
from trainer.zoo import PRESETS, Preset, UnknownModel

# A saved preset's id: lower-case words joined by dashes, like the zoo's ids.
ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,98}[a-z0-9]$"


def as_preset(row: UserPreset) -> Preset:
    return Preset(id=row.id, dataset=row.dataset, order=0, params=row.params, layers=tuple(row.layers),
                  description=row.description or row.name, notes_params="", notes_acc=None,
                  notes_seconds=None, defaults=dict(row.defaults), source="user")


def user_presets(session: Session) -> dict[str, Preset]:
    rows = session.execute(select(UserPreset).order_by(UserPreset.created_at)).scalars()
    return {row.id: as_preset(row) for row in rows}


def all_presets(session: Session) -> dict[str, Preset]:
    return {**PRESETS, **user_presets(session)}


def find(session: Session, preset_id: str) -> Preset:
    if preset_id in PRESETS:
        return PRESETS[preset_id]
    row = session.get(UserPreset, preset_id)
    if row is None:
        saved = ", ".join(user_presets(session)) or "none"
        raise UnknownModel(f"unknown model {preset_id!r}; valid ids: {', '.join(PRESETS)}; "
                           f"saved presets: {saved}")
    return as_preset(row)


def slug(name: str) -> str:
    """An id from a name: "My bn net!" -> "my-bn-net"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100].strip("-")
