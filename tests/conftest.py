"""Shared pytest set-up: test helpers importable, and the torch devices to run on."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
