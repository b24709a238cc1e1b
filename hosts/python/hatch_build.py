"""Copies libtwofold into the wheel, so `pip install hosts/python` works with no path to set.

Which library: `TWOFOLD_LIBRARY` when set, else `$CARGO_TARGET_DIR` (or the checkout's
`target/`) `release/` (`cargo build -p twofold-ffi --release`). With neither, the wheel holds
no library and the package looks for one at import (see `twofold/_ffi.py`). A wheel with a
library is tagged for this platform, not as pure Python.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

if sys.platform == "darwin":
    LIBRARY_FILE = "libtwofold.dylib"
elif sys.platform == "win32":
    LIBRARY_FILE = "twofold.dll"
else:
    LIBRARY_FILE = "libtwofold.so"


class BundleLibrary(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        explicit = os.environ.get("TWOFOLD_LIBRARY")
        if explicit:
            library = Path(explicit)
            if not library.is_file():
                raise FileNotFoundError(f"TWOFOLD_LIBRARY={explicit}: no such file")
        else:
            repo = Path(self.root).resolve().parent.parent
            target = Path(os.environ.get("CARGO_TARGET_DIR") or repo / "target")
            library = target / "release" / LIBRARY_FILE
            if not library.is_file():
                self.app.display_warning(
                    f"twofold: {library} not found; the wheel holds no libtwofold "
                    "(build it with `cargo build -p twofold-ffi --release`, or set TWOFOLD_LIBRARY)"
                )
                return
        build_data["force_include"][str(library)] = f"twofold/_lib/{LIBRARY_FILE}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        self.app.display_info(f"twofold: bundling {library}")
