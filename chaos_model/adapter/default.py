"""Which adapter a run uses when none is given: ``$CHAOS_MODEL_TARGET``, else
``./chaos-target.toml``."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from chaos_model.adapter._load import load_adapter
from chaos_model.adapter._spec import TargetSpec
from chaos_model.errors import AdapterError

ENV_VAR = "CHAOS_MODEL_TARGET"
DEFAULT_FILE = "chaos-target.toml"


def default_target_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_FILE)


def default_target() -> TargetSpec:
    path = default_target_path()
    if not path.exists():
        raise AdapterError(
            f"no target adapter: {path} does not exist; pass --target FILE, set {ENV_VAR},"
            f" or write {DEFAULT_FILE} (see docs/your-own-system.md)"
        )
    return target_at(path.resolve(), path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def target_at(path: Path, mtime_ns: int) -> TargetSpec:
    return load_adapter(path)


def load_target(path: str | os.PathLike[str] | None) -> TargetSpec:
    """The adapter at ``path``, or the default one when None."""
    if path is None:
        return default_target()
    resolved = Path(path)
    if not resolved.exists():
        raise AdapterError(f"{resolved}: no such adapter file")
    return target_at(resolved.resolve(), resolved.stat().st_mtime_ns)
