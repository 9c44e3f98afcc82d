"""Which engine a platform uses: `engine_for(settings, state)`.

The one module that knows every engine; the engines import base.py, never this.
Called by the CLI (stage contexts, `platform status`).
"""

from __future__ import annotations

from bootstrap.config import Settings
from bootstrap.engines.base import Engine
from bootstrap.engines.existing import ExistingEngine
from bootstrap.engines.k3d import K3dEngine
from bootstrap.state import PlatformState
from stacks.errors import PermanentError


def engine_for(settings: Settings, state: PlatformState) -> Engine:
    if settings.engine == "k3d":
        return K3dEngine(settings, state)
    if settings.engine == "existing":
        return ExistingEngine(settings, state)
    raise PermanentError(
        f"unknown engine {settings.engine!r}", hint="use --engine k3d or --engine existing"
    )
