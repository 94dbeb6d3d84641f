"""Inference: prompts as blocks, generation, and (engine issue) the block KV cache and the server."""
