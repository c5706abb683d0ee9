"""`python bench/fleet …` or `python -m bench.fleet …`: the fleet load generator's command line."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# run as a directory, Python puts it first on the path: its modules are not top-level modules
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fleet.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
