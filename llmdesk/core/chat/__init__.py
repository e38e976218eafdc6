"""Talking to a running server: the streaming OpenAI-compatible client, what the playground sends
(parameters, presets, leaving out old turns), and saved conversations. May import: server, hub,
fit, machine, base."""
