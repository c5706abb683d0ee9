"""The hub's rooms: the sync path does not pull in the operator tools around it."""

from __future__ import annotations

import json
import subprocess
import sys

# What one exchange needs must not depend on the backup and restore tools (nor they on it).
SYNC_PATH = "central_hub.exchange"
NOT_ON_IT = ("central_hub.backup", "central_hub.restore", "central_hub.cli",
             "central_hub.dashboard")


def test_the_sync_path_imports_no_backup_or_restore() -> None:
    # A fresh interpreter: in this one, other tests have imported everything already.
    code = (f"import json, sys, {SYNC_PATH}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('central_hub'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                       capture_output=True, text=True).stdout)
    assert SYNC_PATH in loaded and "central_hub.epoch" in loaded
    assert [m for m in loaded if m.startswith(NOT_ON_IT)] == []
