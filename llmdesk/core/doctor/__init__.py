"""`llmdesk doctor`: is this machine ready to host a model (driver, GPUs, vLLM runtime, model cache,
settings), and what to do where it is not. Above machine and server because it checks both.
May import: server, hub, fit, machine, base."""
