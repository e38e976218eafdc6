"""Qt only: thin pages and widgets that subscribe to core objects. Logic lives in llmdesk.core."""
