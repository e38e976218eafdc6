"""A running vLLM server's live figures: /metrics parsed into a Scrape, a window of scrapes that
derives rates and percentiles, and the scraper that fetches them. The GPUs' live figures come from
machine.gpus.GpuSampler. May import: server, hub, fit, machine, base."""
