"""All of llmdesk's logic. Never imports Qt, torch or vllm (tests/unit/test_layering.py checks)."""
