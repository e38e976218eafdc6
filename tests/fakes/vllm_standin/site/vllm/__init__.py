"""llmdesk's stand-in for vLLM 0.26.0 (tests only): see tests/fakes/vllm_standin/README in runtime.py."""
import os
import time

__version__ = os.environ.get("FAKE_VLLM_VERSION", "0.26.0")

# the seconds a real `import vllm` takes (about 15 on an H100 host): what a preloaded vLLM saves
time.sleep(float(os.environ.get("FAKE_VLLM_IMPORT_S", "0") or 0))
