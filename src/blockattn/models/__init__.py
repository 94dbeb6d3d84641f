"""Loading causal LMs: any Llama-family HF model by path, or the default SmolLM2-135M-Instruct."""

from blockattn.models.loader import DEFAULT_MODEL, SUPPORTED_MODEL_TYPES, LoadedModel, load, load_tokenizer, resolve

__all__ = ["DEFAULT_MODEL", "SUPPORTED_MODEL_TYPES", "LoadedModel", "load", "load_tokenizer", "resolve"]
