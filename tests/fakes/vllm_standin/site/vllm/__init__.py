"""llmdesk's stand-in for vLLM 0.26.0 (tests only): see tests/fakes/vllm_standin/README in runtime.py."""
import os

__version__ = os.environ.get("FAKE_VLLM_VERSION", "0.26.0")
