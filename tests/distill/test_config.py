"""Run configs: YAML + overrides, strict keys, a digest that ignores stopping rules."""

from pathlib import Path

import pytest

from blockattn.distill.config import RunConfig, load_config
from blockattn.errors import UserError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


class TestLoadConfig:
    @pytest.mark.parametrize("name", ["smoke-cpu.yaml", "smollm2-h200.yaml"])
    def test_shipped_configs_load(self, name):
        cfg = load_config(CONFIGS / name)
        assert cfg.train.steps > 0

    def test_overrides_are_parsed_as_yaml(self):
        cfg = load_config(CONFIGS / "smoke-cpu.yaml", ["loss.weighting=gain", "data.block_dropout=0.5",
                                                       "adapter.target_modules=[q_proj, v_proj]"])
        assert cfg.loss.weighting == "gain"
        assert cfg.data.block_dropout == 0.5
        assert cfg.adapter.target_modules == ["q_proj", "v_proj"]

    @pytest.mark.parametrize("override", ["loss.weightng=kl", "nosuch.x=1", "loss=1", "loss.weighting=bogus",
                                          "data.block_dropout=1.0", "adapter.target_modules=[lm_head]"])
    def test_mistakes_are_user_errors(self, override):
        with pytest.raises(UserError):
            load_config(CONFIGS / "smoke-cpu.yaml", [override])

    def test_digest_ignores_stopping_and_logging_but_not_training(self):
        base = load_config(CONFIGS / "smoke-cpu.yaml")
        assert load_config(CONFIGS / "smoke-cpu.yaml", ["train.steps=7", "train.log_every=3"]).digest() == base.digest()
        assert load_config(CONFIGS / "smoke-cpu.yaml", ["optim.lr=0.1"]).digest() != base.digest()

    def test_defaults_are_valid(self):
        assert RunConfig().loss.weighting == "none"
