"""Benchmarks, run as ``python -m benchmarks.<name>`` (see the README).

Importing the package sets Django up on the benchmarks' own var dir first, so
that each benchmark module can import the panel's modules in any order.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "farm.settings")
os.environ.setdefault("FARM_VAR_DIR", str(ROOT / "var" / "bench"))
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()
