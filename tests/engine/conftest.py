"""Engine fixtures: tiny random models with the real SmolLM2 tokenizer (fast), saved as HF directories."""

from __future__ import annotations

import pytest
