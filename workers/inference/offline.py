"""Ultralytics imported so that it never reaches the network nor installs packages at run time.

`YOLO_OFFLINE=1` makes ultralytics' online check answer "offline" (no DNS probe, no download,
no settings sync) and `YOLO_AUTOINSTALL=False` turns off its AutoUpdate, which otherwise
pip-installs a missing export or runtime requirement. Both are read when ultralytics is first
imported, so they are set here before that import; a process that imported ultralytics first
without them still gets AutoUpdate switched off in the module that reads it.
"""

from __future__ import annotations

import os
from types import ModuleType

ENVIRONMENT = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False"}
"""Forced in every process that loads a model: weights are never downloaded at run time."""


def ultralytics() -> ModuleType:
    os.environ.update(ENVIRONMENT)
    os.environ.setdefault("YOLO_VERBOSE", "False")
    import ultralytics as module  # noqa: PLC0415 (heavy: torch comes with it)
    from ultralytics.utils import checks  # noqa: PLC0415

    checks.AUTOINSTALL = False  # type: ignore[attr-defined]
    return module
