"""What changed from one run to the next — the notes' method, "change one thing, see what it
did": the layers inserted, removed or changed and the hyper-parameters changed, as data and
as a short label (a new run is named by it); and the tree of runs by parent, with the notes'
chronology as the trunk for the presets.

    changes = diff(parent_config, child_config)      # [Change(...), ...]
    label(changes)                                   # "bn1d 60 after layer 1, lr 0.001"
"""

from dataclasses import asdict, dataclass
from typing import Any

from trainer.layers import LayerError, parse_layer
from trainer.zoo import DEFAULT_KEYS, Preset

# Keys that do not define an experiment: labels (the name; the preset a run started from: its
# network and defaults are compared instead), and the seed (seeds of one config form a group).
NOT_A_CHANGE = ("name", "seed", "model")


@dataclass(frozen=True)
class Change:
    key: str            # "layers" or a config key
    op: str             # "set" (a config value), "insert" | "remove" | "replace" (layers)
    before: Any
    after: Any
    at: int | None      # layers: 1-based position in the earlier network
    text: str           # "bn1d 60 after layer 1", "lr 0.005 → 0.001"
    short: str          # for names: "bn1d 60 after layer 1", "lr 0.001"


def _canonical(layer: str) -> str:
    try:
        return str(parse_layer(layer))
    except LayerError:
        return " ".join(layer.split())


def _value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _gaps(old: list[str], new: list[str]) -> list[tuple[int, list[int], list[str]]]:
    """A shortest edit script (longest common subsequence; difflib's heuristic is not minimal
    and reads a moved batch-norm as four edits): for each stretch between kept layers, the old
    position it follows, the old indices it removes and the new layers it puts there."""
    n, m = len(old), len(new)
    common = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            common[i][j] = common[i + 1][j + 1] + 1 if old[i] == new[j] else max(common[i + 1][j], common[i][j + 1])
    gaps, i, j = [], 0, 0
    while i < n or j < m:
        if i < n and j < m and old[i] == new[j]:
            i, j = i + 1, j + 1
            continue
        start, removed, added = i, [], []
        while (i < n or j < m) and not (i < n and j < m and old[i] == new[j]):
            if j < m and (i == n or common[i][j + 1] >= common[i + 1][j]):
                added.append(new[j])
                j += 1
            else:
                removed.append(i)
                i += 1
        gaps.append((start, removed, added))
    return gaps


def layer_changes(before: list[str], after: list[str]) -> list[Change]:
    """The edits that turn network `before` into `after`, positions counted in `before`:
    a removed layer and a new one in its place read as one changed layer."""
    old, new = [_canonical(x) for x in before], [_canonical(x) for x in after]
    changes = []
    for start, removed, added in _gaps(old, new):
        for k, layer in zip(removed, added):
            changes.append(Change("layers", "replace", old[k], layer, k + 1, f"layer {k + 1}: {old[k]} → {layer}",
                                  f"layer {k + 1} {layer}"))
        for k in removed[len(added):]:
            changes.append(Change("layers", "remove", old[k], None, k + 1, f"removed layer {k + 1} ({old[k]})",
                                  f"no {old[k]}"))
        after_layer = removed[-1] + 1 if removed else start
        for layer in added[len(removed):]:
            where = f"after layer {after_layer}" if after_layer else "before layer 1"
            changes.append(Change("layers", "insert", None, layer, after_layer, f"{layer} {where}",
                                  f"{layer} {where}"))
    return changes


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """The changes from config `before` to config `after` (layers first, then keys by name)."""
    changes = layer_changes(list(before.get("layers") or []), list(after.get("layers") or []))
    for key in sorted(set(before) | set(after)):
        if key in NOT_A_CHANGE or key == "layers" or before.get(key) == after.get(key):
            continue
        old, new = before.get(key), after.get(key)
        changes.append(Change(key, "set", old, new, None, f"{key} {_value(old)} → {_value(new)}",
                              f"{key} {_value(new)}"))
    return changes


def preset_config(preset: Preset) -> dict[str, Any]:
    """A preset as the config its run would have with no change (seed and name left out)."""
    return {"model": preset.id, "dataset": preset.dataset, "layers": list(preset.layers),
            "train_subset": None, "test_subset": None, **{k: preset.defaults.get(k) for k in DEFAULT_KEYS}}


def label(changes: list[Change], limit: int = 3) -> str:
    """A short name for a set of changes: "bn1d 60 after layer 1, lr 0.001" (+ "and 2 more")."""
    if not changes:
        return "no change"
    words = [c.short for c in changes[:limit]]
    more = len(changes) - limit
    return ", ".join(words) + (f" and {more} more" if more > 0 else "")


def as_dicts(changes: list[Change]) -> list[dict[str, Any]]:
    return [asdict(c) for c in changes]


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def run_edge(run, parent=None, preset: Preset | None = None) -> dict[str, Any] | None:
    """What `run` changed against its parent run (or, without one, the preset it started from)
    and what that did: Δ best accuracy, Δ parameters, Δ training time. None with neither."""
    if parent is not None:
        changes = diff(parent.config, run.config)
        delta = {"best_test_acc": _delta(run.best_test_acc, parent.best_test_acc),
                 "params": run.params - parent.params,
                 "total_seconds": _delta(run.total_seconds or None, parent.total_seconds or None)}
        source = {"kind": "run", "id": parent.id}
    elif preset is not None:
        changes = diff(preset_config(preset), run.config)
        # the notes' times were measured on another machine: no Δ time against a preset
        delta = {"best_test_acc": _delta(run.best_test_acc, preset.notes_acc),
                 "params": run.params - preset.params, "total_seconds": None}
        source = {"kind": "preset", "id": preset.id}
    else:
        return None
    return {"source": source, "target": {"kind": "run", "id": run.id}, "changes": as_dicts(changes),
            "label": label(changes), "delta": delta}


def preset_edge(before: Preset, after: Preset) -> dict[str, Any]:
    """A step of the notes' chronology: what the next experiment changed, and the notes' figures."""
    changes = diff(preset_config(before), preset_config(after))
    return {"source": {"kind": "preset", "id": before.id}, "target": {"kind": "preset", "id": after.id},
            "changes": as_dicts(changes), "label": label(changes),
            "delta": {"best_test_acc": _delta(after.notes_acc, before.notes_acc), "params": after.params - before.params,
                      "total_seconds": _delta(after.notes_seconds, before.notes_seconds)}}
