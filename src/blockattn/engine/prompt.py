"""Turning documents + a question into token blocks, with the model's chat template.

    [prefix]  <|im_start|>system ... <|im_end|>\n<|im_start|>user\n       (a context block, shared by all requests)
    [doc 1]   text of document 1 + "\n\n"                                (one block per document / segment)
    ...
    [query]   Question: ...<|im_end|>\n<|im_start|>assistant\n           (the query block: sees everything)

Full mode and block mode use exactly these tokens; only the attention mask differs. Each block is tokenized
on its own, so a document's tokens (and therefore its cache key) never depend on its neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

# None = the model's own default system prompt: SmolLM2-135M answered the demo questions best with the one it
# was tuned with (tried: an explicit "answer from the documents" instruction did worse in full mode).
DEFAULT_SYSTEM: str | None = None
_MARK = "\u0000BLOCKATTN-CONTENT\u0000"  # never occurs in real text (textio refuses NUL bytes)
# used when a model has no chat template (base models)
_PLAIN_PREFIX = "Documents:\n\n"
_PLAIN_QUERY = "Question: {question}\nAnswer:"


@dataclass
class PromptBlocks:
    """Token ids of a request, block by block."""

    prefix: list[int]  # the instruction prefix: a context block like the documents
    documents: list[list[int]]  # one list per document block
    query: list[int]  # the final (query) block

    def all_blocks(self) -> list[list[int]]:
        """[prefix, doc blocks..., query] -- the layout order."""
        return [self.prefix, *self.documents, self.query]

    @property
    def context_tokens(self) -> int:
        return len(self.prefix) + sum(len(d) for d in self.documents)

    @property
    def total_tokens(self) -> int:
        return self.context_tokens + len(self.query)


def chat_frame(tokenizer, system: str | None = DEFAULT_SYSTEM) -> tuple[str, str]:
    """(text before, text after) the user message in the model's chat template."""
    if not getattr(tokenizer, "chat_template", None):
        return _PLAIN_PREFIX, ""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": _MARK}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    before, after = rendered.split(_MARK)
    return before, after


def encode_text(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def build_prompt(tokenizer, documents: list[str], question: str, system: str | None = DEFAULT_SYSTEM) -> PromptBlocks:
    """Blocks for a RAG request: documents become context blocks, the question the query block."""
    before, after = chat_frame(tokenizer, system)
    if getattr(tokenizer, "chat_template", None):
        query_text = f"Question: {question}{after}"
    else:
        query_text = _PLAIN_QUERY.format(question=question)
    return PromptBlocks(
        prefix=encode_text(tokenizer, before),
        documents=[encode_text(tokenizer, doc.strip() + "\n\n") for doc in documents],
        query=encode_text(tokenizer, query_text),
    )


def stop_token_ids(tokenizer, model_config) -> set[int]:
    """Token ids that end an answer: the model's eos id(s), the tokenizer's eos, and <|endoftext|> if any."""
    ids: set[int] = set()
    eos = getattr(model_config, "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    for special in ("<|endoftext|>", "<|im_end|>", "<|eot_id|>"):
        tid = tokenizer.convert_tokens_to_ids(special)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid is not None:
            ids.add(tid)
    return ids
