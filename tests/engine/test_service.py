"""The text-level service: prompts (block and full mode use the same tokens), limits, stop strings, cancel."""

import pytest

from blockattn.engine.engine import ContextTooLong
from blockattn.engine.prompt import build_prompt
from blockattn.engine.sampling import SamplingParams
from blockattn.engine.service import Service, resolve_adapter
from blockattn.errors import UserError

DOCS = ["The Bell Rock Lighthouse stands on a reef.", "Honey bees dance to share where food is."]


@pytest.fixture(scope="module")
def service(tiny_dir):
    return Service.load(str(tiny_dir), adapter="none", device="cpu")


class TestPrompts:
    def test_chat_with_one_user_message_is_the_rag_prompt(self, service):
        chat = service.chat_prompt([{"role": "user", "content": "Who?"}], DOCS)
        rag = build_prompt(service.tokenizer, DOCS, "Who?")
        assert chat.mode == "block" and chat.query == rag.query
        assert [list(b) for b in chat.blocks] == [rag.prefix, *rag.documents]

    def test_block_and_full_mode_use_the_same_tokens(self, service):
        block, full = service.rag_prompt(DOCS, "Who?", "block"), service.rag_prompt(DOCS, "Who?", "full")
        assert (block.blocks, block.query) == (full.blocks, full.query) and block.n_documents == 2

    def test_a_document_is_tokenized_once_and_its_tokens_reused(self, service, monkeypatch):
        first = service.chat_prompt([{"role": "user", "content": "Who?"}], DOCS)
        calls = []
        original = service.tokenizer.__class__.__call__
        monkeypatch.setattr(service.tokenizer.__class__, "__call__",
                            lambda self, text, **kw: calls.append(text) or original(self, text, **kw))
        again = service.chat_prompt([{"role": "user", "content": "Where?"}], list(reversed(DOCS)))
        assert again.blocks[1:] == list(reversed(first.blocks[1:]))
        texts = [text if isinstance(text, str) else " ".join(text) for text in calls]
        assert calls and not any(doc.strip() in text for doc in DOCS for text in texts)  # prefix, question only
        assert again.tokenize_ms > 0

    def test_new_documents_are_tokenized_in_one_batch_each_on_its_own(self, service, monkeypatch):
        docs = ["Mount Elbrus is in the Caucasus.", "Lake Baikal is deep.", "Mount Elbrus is in the Caucasus.",
                "The Danube flows east."]
        calls = []
        original = service.tokenizer.__class__.__call__
        monkeypatch.setattr(service.tokenizer.__class__, "__call__",
                            lambda self, text, **kw: calls.append(text) or original(self, text, **kw))
        prompt = service.chat_prompt([{"role": "user", "content": "Which?"}], docs)
        batches = [text for text in calls if isinstance(text, list)]
        assert len(batches) == 1 and len(batches[0]) == 3  # the repeated document once
        alone = [original(service.tokenizer, d.strip() + "\n\n", add_special_tokens=False)["input_ids"] for d in docs]
        # batching never changes a document's tokens (nor its cache key)
        assert [block.tolist() for block in prompt.blocks[1:]] == alone

    def test_a_full_mode_service_runs_documents_in_full_attention(self, tiny_dir):
        full = Service.load(str(tiny_dir), adapter="default", device="cpu", mode="full")
        prompt = full.chat_prompt([{"role": "user", "content": "Who?"}], DOCS)
        assert full.adapter_name is None and prompt.mode == "full" and prompt.n_documents == 2
        generation = full.generate(prompt, max_tokens=2)
        generation.text()
        assert generation.usage.cached_blocks == generation.usage.computed_blocks == 0
        assert full.engine.store.stats()["computed"] == 0 and "tokenize" in generation.usage.timings_ms

    def test_chat_without_documents_is_full_attention(self, service):
        prompt = service.chat_prompt([{"role": "system", "content": "Be terse."},
                                      {"role": "user", "content": "Hi"}])
        assert prompt.mode == "full" and prompt.blocks == []
        assert service.decode(prompt.query).endswith("assistant\n")

    def test_earlier_turns_go_into_the_prefix_block(self, service):
        messages = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
                    {"role": "user", "content": "second"}]
        prompt = service.chat_prompt(messages, DOCS)
        assert "first" in service.decode(prompt.blocks[0]) and "second" in service.decode(prompt.query)

    def test_auto_segment_cuts_a_long_document_into_blocks(self, service):
        from pathlib import Path

        text = (Path(__file__).parents[1] / "segment" / "fixtures" / "topic_shifts.txt").read_text()
        prompt = service.rag_prompt([text, DOCS[0]], "What is rosin for?", segment="auto")
        assert prompt.n_documents > 2 and len(prompt.blocks) == prompt.n_documents + 1  # + the prefix block
        assert service.rag_prompt(DOCS, "Who?", segment="auto").n_documents == 2  # short: one block each

    def test_completion_prompt_from_text_or_ids(self, service):
        ids = service.encode("Once upon a time")
        assert service.completion_prompt("Once upon a time").query == ids
        with_docs = service.completion_prompt(ids, DOCS)
        assert with_docs.mode == "block" and len(with_docs.blocks) == 2 and with_docs.query == ids

    @pytest.mark.parametrize("call", [
        lambda s: s.chat_prompt([]),
        lambda s: s.chat_prompt([{"role": "assistant", "content": "x"}], DOCS),
        lambda s: s.completion_prompt(""),
        lambda s: s.completion_prompt([1, 10**9]),
        lambda s: s.rag_prompt(DOCS, "  "),
        lambda s: s.rag_prompt(DOCS, "q", segment="sentences"),
    ])
    def test_bad_input_is_a_user_error(self, service, call):
        with pytest.raises(UserError):
            call(service)


class TestGeneration:
    def test_default_max_tokens_fits_the_window(self, service):
        prompt = service.completion_prompt([5] * 2000)  # 48 positions left in the tiny model's 2048
        assert service.generate(prompt).max_tokens == 48
        with pytest.raises(ContextTooLong):
            service.generate(prompt, max_tokens=49)
        with pytest.raises(ContextTooLong):
            service.generate(service.completion_prompt([5] * 2048))

    def test_greedy_generation_is_deterministic_and_reports_usage(self, service):
        prompt = service.rag_prompt(DOCS, "Where does the lighthouse stand?")
        first = service.generate(prompt, max_tokens=8)
        text = first.text()
        second = service.generate(prompt, max_tokens=8)
        assert second.text() == text and first.finish_reason in ("stop", "length")
        assert second.usage.cached_blocks == 3 and second.usage.computed_blocks == 0
        assert first.usage.prompt_tokens == prompt.prompt_tokens and first.usage.completion_tokens <= 8
        assert 0 < first.usage.ttft_ms <= first.usage.total_ms

    def test_stop_string(self, service):
        prompt = service.completion_prompt("counting:")
        full = service.generate(prompt, max_tokens=12).text()
        stop = full[3:6]
        assert stop and stop in full
        cut = service.generate(prompt, max_tokens=12, stop=[stop])
        assert cut.text() == full[:full.index(stop)] and cut.finish_reason == "stop"

    def test_sampling_with_a_seed_reproduces(self, service):
        prompt = service.completion_prompt("x")
        runs = [service.generate(prompt, SamplingParams(1.0, 0.9, seed=11), 10).text() for _ in range(2)]
        assert runs[0] == runs[1]

    def test_generations_begun_together_decide_what_each_decides_alone(self, service):
        """The server's admission: prefills begun before earlier ones' first tokens are decided; each request's
        first token is the one it chooses started alone (sampled ones keep their own sampler)."""
        prompts = [service.rag_prompt(DOCS, q) for q in ("Where?", "What do bees do?")] + [
            service.completion_prompt("counting:")]
        sampling = [SamplingParams(), SamplingParams(), SamplingParams(1.0, 0.9, seed=3)]
        alone = [service.generate(p, s, max_tokens=4) for p, s in zip(prompts, sampling)]
        for g in alone:
            g.start()
        together = [service.generate(p, s, max_tokens=4) for p, s in zip(prompts, sampling)]
        for g in together:
            g.begin()
        for a, b in zip(alone, together):
            b.first()
            assert a.tokens == b.tokens and len(b.tokens) <= 1

    def test_cancelled_before_start_does_no_work(self, service):
        generation = service.generate(service.completion_prompt("x"), max_tokens=5)
        generation.cancel.set()
        assert generation.text() == "" and generation.finish_reason == "cancelled"
        assert generation.usage.completion_tokens == 0


def test_adapter_specs(tmp_path):
    assert resolve_adapter("none") == (None, None) and resolve_adapter(None) == (None, None)
    assert resolve_adapter("default", str(tmp_path)) == (None, None)  # a local model has no shipped adapter
    with pytest.raises(UserError):
        resolve_adapter("/no/such/adapter")
    with pytest.raises(UserError, match="not a block adapter"):
        resolve_adapter(str(tmp_path))  # a directory, but not an adapter
