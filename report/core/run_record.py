"""The run record, ``run.parquet``'s one row: what it holds field by field (each checked, so a record made
elsewhere is refused before it is placed), the run id it is named by, and its encoding (dicts and lists
as JSON text, named in one column)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from report.core.config import PROFILES

if TYPE_CHECKING:  # pandas is imported where a table is read or written
    import pandas as pd


RUN_ID = re.compile(r"\d{8}-\d{6}-\d{6}-[0-9a-f]{4}")  # new_run_id's form; anything else is not a run
JSON_KEYS = "_json"  # the run record's column naming its JSON-encoded columns


def _is_time(value: Any) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _text_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and value >= 0


# What a run record holds, field by field: each must pass its check, so a record made elsewhere (an
# imported bundle) is refused before it is placed, never stored to fail later. (field, required, check)
RECORD: tuple[tuple[str, bool, Any], ...] = (
    ("run_id", True, lambda v: isinstance(v, str) and RUN_ID.fullmatch(v) is not None),
    ("experiment", True, lambda v: isinstance(v, str) and bool(v)),
    ("title", True, lambda v: isinstance(v, str)),
    ("profile", True, lambda v: isinstance(v, str) and bool(v)),
    ("stand_in", False, lambda v: v in PROFILES),  # the profile it ran in place of ``profile``'s study
    ("config", True, lambda v: isinstance(v, dict)),
    ("seed", True, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    ("started", True, _is_time),
    ("finished", True, _is_time),
    ("duration_s", True, _number),
    ("sessions", False, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
    ("device", True, lambda v: v in ("cpu", "cuda", "mps")),
    ("device_name", True, lambda v: isinstance(v, str) and bool(v.strip())),
    ("python", True, lambda v: isinstance(v, str)),
    ("platform", True, lambda v: isinstance(v, str)),
    ("versions", True, _text_map),
    ("git_commit", True, lambda v: isinstance(v, str)),
    ("git_dirty", True, lambda v: isinstance(v, bool)),
    ("fingerprint", True, lambda v: _text_map(v) and {"code", "config", "versions"} <= set(v)),
    ("data_dir", True, lambda v: isinstance(v, str)),
    ("data_files", True, lambda v: isinstance(v, list) and all(isinstance(f, str) for f in v)),
    ("headline", True, lambda v: isinstance(v, dict) and isinstance(v.get("label"), str)),
    ("files", True, _text_map),
    ("accepted", False, lambda v: isinstance(v, list) and all(isinstance(a, dict) for a in v)),
)


def record_problem(meta: dict[str, Any], only: tuple[str, ...] = ()) -> str | None:
    """The first field of a run record (or of ``only`` these, all required) that is missing or malformed
    (``"finished: 5"``), or ``None``."""
    for name, required, ok in RECORD:
        if only and name not in only:
            continue
        if name not in meta:
            if required:
                return f"{name}: missing"
        elif not ok(meta[name]):
            return f"{name}: {meta[name]!r}"
    return None


def new_run_id() -> str:
    """Sortable by creation time (microseconds), unique by a random tail: ``20261126-165949-123456-a1b2``."""
    now = datetime.now(timezone.utc)  # one clock for runs made on any machine
    return now.strftime("%Y%m%d-%H%M%S-%f") + "-" + uuid.uuid4().hex[:4]


def decode_record(frame: pd.DataFrame) -> dict[str, Any]:
    """A run record's one row as plain Python values: numpy scalars as ints, floats and bools, and the
    dicts and lists ``encode_record`` stored as JSON text decoded."""
    row = {k: v.item() if hasattr(v, "item") else v for k, v in frame.iloc[0].to_dict().items()}
    if JSON_KEYS in row:  # only what encode_record encoded
        encoded = json.loads(row.pop(JSON_KEYS))
    else:  # a record from before the column existed: its dicts and lists, by their first character
        encoded = [k for k, v in row.items() if isinstance(v, str) and v[:1] in ("{", "[")]
    for key in encoded:
        row[key] = json.loads(row[key])
    return row


def encode_record(meta: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    encoded = sorted(k for k, v in meta.items() if isinstance(v, (dict, list, tuple)))
    row = {k: json.dumps(v, sort_keys=True) if k in encoded else v for k, v in meta.items()}
    return pd.DataFrame([{**row, JSON_KEYS: json.dumps(encoded)}])
