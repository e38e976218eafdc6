"""llmdesk: host LLMs on your own NVIDIA GPUs with vLLM."""

__version__ = "0.1.0"
APP_ID = "io.github.llmdesk"
