"""A pretrained LLM that sees: the checkpoint's image tokens as its prefix (LLaVA style)."""
