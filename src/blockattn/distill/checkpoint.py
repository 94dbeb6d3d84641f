"""Checkpoints: one file, written atomically, holding everything a run needs to continue as if never stopped.

Contents: the trainable tensors (LoRA or full weights, and the sinks), optimizer and LR-scheduler state,
every process's RNG state, the step and the data position (rows consumed), the config digest. A run killed
at any moment (SIGKILL included) leaves either the previous checkpoint or the new one, never half a file.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

CHECKPOINT_FILE = "checkpoint.pt"


def capture_rng() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, payload: dict) -> Path:
    """Write `payload` to RUN_DIR/checkpoint.pt atomically (temp file + rename)."""
    path = Path(run_dir) / CHECKPOINT_FILE
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(run_dir: Path) -> dict | None:
    """The checkpoint in RUN_DIR, or None. It holds Python and NumPy RNG states (plain objects), so it is
    unpickled fully: only load checkpoints this code wrote."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)
