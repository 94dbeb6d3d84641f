"""Student and teacher: the teacher is the exact frozen base in full attention; the adapter switches
exactly between block (student) and full (teacher) behaviour, also after a save/load round trip."""

import copy

import torch

from blockattn.adapter import load_block_adapter
from blockattn.attention import block_forward
from blockattn.distill.recipe import BlockTrainingRecipe
from blockattn.distill.student import decoder_of
from blockattn.models.tiny import tiny_model


def trained(tiny_config, tmp_path, *overrides):
    recipe = BlockTrainingRecipe(tiny_config(*overrides), "distill", tmp_path, progress=False).setup()
    frozen_before = {n: p.detach().clone() for n, p in recipe.student.named_parameters() if not p.requires_grad}
    recipe.train()
    return recipe, frozen_before


class TestTeacher:
    def test_teacher_is_plain_causal_attention_of_the_base(self, tiny_config, tmp_path):
        recipe = BlockTrainingRecipe(tiny_config("data.block_dropout=0.0"), "distill", tmp_path,
                                     progress=False).setup()
        batch = recipe.loader.batch(0)
        hidden = recipe.teacher.hidden(batch.teacher_ids, batch.teacher_layout)
        base = tiny_model(seed=0, vocab_size=512, initializer_range=0.2)
        for row, n in enumerate(batch.teacher_layout.lengths):
            with torch.no_grad():
                plain = decoder_of(base)(input_ids=batch.teacher_ids[row:row + 1, :n]).last_hidden_state[0]
            assert (hidden[row, :n] - plain).abs().max() < 1e-5

    def test_teacher_stays_frozen(self, tiny_config, tmp_path):
        recipe, frozen_before = trained(tiny_config, tmp_path)
        for name, p in recipe.student.named_parameters():
            if not p.requires_grad:
                assert p.grad is None, name
                assert torch.equal(p, frozen_before[name]), name
        assert any(p.requires_grad for p in recipe.student.parameters())

    def test_full_fine_tuning_keeps_a_separate_frozen_teacher(self, tiny_config, tmp_path):
        recipe = BlockTrainingRecipe(tiny_config("adapter.lora_rank=0"), "distill", tmp_path, progress=False).setup()
        teacher_weights = copy.deepcopy(recipe.teacher.model.state_dict())
        recipe.train()
        assert all(torch.equal(v, recipe.teacher.model.state_dict()[k]) for k, v in teacher_weights.items())
        assert not all(torch.equal(v, recipe.student.model.state_dict()[k]) for k, v in teacher_weights.items())


class TestAdapterSwitch:
    def test_adapter_on_is_the_student_and_off_is_the_exact_base(self, tiny_config, tmp_path):
        recipe, _ = trained(tiny_config, tmp_path)
        model = recipe.student.model
        batch = recipe.loader.batch(0)
        base = tiny_model(seed=0, vocab_size=512, initializer_range=0.2)
        with torch.no_grad():
            with model.disable_adapter():
                off_full = model(input_ids=batch.teacher_ids).logits
            base_full = base(input_ids=batch.teacher_ids).logits
            on_full = model(input_ids=batch.teacher_ids).logits
        assert torch.equal(off_full, base_full)  # adapter off: bit for bit the base model
        assert (on_full - base_full).abs().max() > 1e-4  # adapter on: trained weights in play

    def test_saved_adapter_reproduces_the_student_and_switches_off_to_full(self, tiny_config, tmp_path):
        recipe, _ = trained(tiny_config, tmp_path)
        path = recipe.save_adapter()
        batch = recipe.loader.batch(0)
        recipe.student.eval()
        with torch.no_grad():
            student = recipe.student(batch.student_ids, batch.student_layout)
        loaded = load_block_adapter(tiny_model(seed=0, vocab_size=512, initializer_range=0.2), path)
        assert loaded.sinks_per_block == 2 and loaded.meta["objective"] == "distill"
        with torch.no_grad():
            again = block_forward(decoder_of(loaded.model), batch.student_ids, batch.student_layout,
                                  sinks=loaded.sinks).last_hidden_state
            with loaded.model.disable_adapter():
                off = block_forward(decoder_of(loaded.model), batch.teacher_ids, batch.teacher_layout).last_hidden_state
            teacher = recipe.teacher.hidden(batch.teacher_ids, batch.teacher_layout)
        assert (again - student).abs().max() < 1e-5
        assert torch.equal(off, teacher)
