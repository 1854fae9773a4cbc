"""jfs next to JuiceFS side by side: the entry point of the `bench/comparison` package (see its docstring).

Usage:  .venv/bin/python bench/compare.py [--quick] [--backends sqlite-file,redis-file,sqlite-s3]
        [--out docs/benchmarks.md] [--juicefs PATH] [--workdir DIR] [--keep] [--rounds N [--rounds-long M]]
        [--scale FILES]   (also bench/scale.py at FILES files on sqlite-file / redis-file)

The package holds the harness (subprocesses, mounts, RSS), the workloads, the backends and the report.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comparison.cli import main  # noqa: E402  (the package sits next to this script)

if __name__ == "__main__":
    sys.exit(main())
