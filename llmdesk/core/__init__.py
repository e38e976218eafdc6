"""All of llmdesk's logic, one package per domain. Never imports Qt, torch or vllm.

The packages are layers; each may import only those below it (import-linter checks this, see
pyproject.toml), and the packages on one line do not import each other:

    chat | metrics | doctor     what the app does with a running server, and the machine's check-up
    hub | server                the Hugging Face Hub and the local library / a supervised vLLM
    fit                         will a model run, and with how much context and concurrency
    machine                     the GPUs here, and the catalogue of GPUs to plan for
    base                        errors, paths, settings, secrets, the log file, units
"""
