"""Text generation: a GPT-style decoder with a KV cache, sampling, and GPT-2 checkpoint loading."""
