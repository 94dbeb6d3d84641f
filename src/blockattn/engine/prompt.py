"""Turning documents + a question into token blocks, with the model's chat template.

    [prefix]  <|im_start|>system ... <|im_end|>\n<|im_start|>user\n       (a context block, shared by all requests)
    [doc 1]   text of document 1 + "\n\n"                                (one block per document / segment)
    ...
    [query]   Question: ...<|im_end|>\n<|im_start|>assistant\n           (the query block: sees everything)

Full mode and block mode use exactly these tokens; only the attention mask differs. Each block is tokenized
on its own, so a document's tokens (and therefore its cache key) never depend on its neighbours. Chat
requests (`build_chat_prompt`) put earlier turns into the prefix block and the last user message into the
query block.
"""

from __future__ import annotations

from dataclasses import dataclass

from blockattn.errors import UserError

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


def _template_split(tokenizer, messages: list[dict]) -> tuple[str, str]:
    """(text before, text after) the content of the last message, rendered with the chat template."""
    marked = [*messages[:-1], {**messages[-1], "content": _MARK}]
    rendered = tokenizer.apply_chat_template(marked, tokenize=False, add_generation_prompt=True)
    before, after = rendered.split(_MARK)
    return before, after


def chat_frame(tokenizer, system: str | None = DEFAULT_SYSTEM) -> tuple[str, str]:
    """(text before, text after) the user message in the model's chat template."""
    if not getattr(tokenizer, "chat_template", None):
        return _PLAIN_PREFIX, ""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": _MARK}]
    return _template_split(tokenizer, messages)


def encode_text(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_documents(tokenizer, documents: list[str]) -> list[list[int]]:
    """One block per document, each tokenized on its own (its key never depends on its neighbours), all in one
    batched call (a fast tokenizer encodes a batch in parallel: 13 HotpotQA paragraphs took 1.7 ms instead of
    2.9 on 2 CPU cores)."""
    if not documents:
        return []
    return tokenizer([doc.strip() + "\n\n" for doc in documents], add_special_tokens=False)["input_ids"]


def build_prompt(tokenizer, documents: list[str], question: str, system: str | None = DEFAULT_SYSTEM) -> PromptBlocks:
    """Blocks for a RAG request: documents become context blocks, the question the query block."""
    before, after = chat_frame(tokenizer, system)
    if getattr(tokenizer, "chat_template", None):
        query_text = f"Question: {question}{after}"
    else:
        query_text = _PLAIN_QUERY.format(question=question)
    return PromptBlocks(prefix=encode_text(tokenizer, before), documents=encode_documents(tokenizer, documents),
                        query=encode_text(tokenizer, query_text))


def _require_chat_template(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("this model has no chat template; use /v1/completions with a plain prompt")


def build_chat_prompt(tokenizer, messages: list[dict], documents: list[str]) -> PromptBlocks:
    """Blocks for a chat request with documents: the conversation up to the last user message is the prefix
    block (with `DEFAULT_SYSTEM`, if set, unless the messages bring their own system message), the documents are
    context blocks, the last user message is the query block. For [user: q] this is `build_prompt(docs, q)`.

    messages: [{"role": "system" | "user" | "assistant", "content": str}, ...], the last one from the user."""
    _require_chat_template(tokenizer)
    if not messages or messages[-1]["role"] != "user":
        raise UserError("the last message must be a user message (it holds the question)")
    if DEFAULT_SYSTEM and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}, *messages]
    before, after = _template_split(tokenizer, messages)
    return PromptBlocks(prefix=encode_text(tokenizer, before), documents=encode_documents(tokenizer, documents),
                        query=encode_text(tokenizer, f"Question: {messages[-1]['content']}{after}"))


def build_chat_tokens(tokenizer, messages: list[dict]) -> list[int]:
    """A chat request without documents: the whole conversation, for full attention."""
    _require_chat_template(tokenizer)
    if not messages or messages[-1]["role"] != "user":
        raise UserError("the last message must be a user message")
    return encode_text(tokenizer, tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


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
