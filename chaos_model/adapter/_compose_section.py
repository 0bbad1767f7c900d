"""The ``[compose]`` section of an adapter: how the compose backend runs the target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos_model.adapter._load import _Table


@dataclass(frozen=True)
class ComposeSpec:
    #: the compose file, relative to the adapter file's folder
    file: str = "compose.test.yml"


def parse_compose(table: _Table) -> ComposeSpec:
    spec = ComposeSpec(file=table.text("file", ComposeSpec.file))
    table.done()
    return spec
