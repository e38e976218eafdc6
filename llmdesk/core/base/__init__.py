"""What every package uses: Problem errors, folders, typed settings and app state, secrets (keyring),
the log file and byte units. Imports nothing of llmdesk.core above it."""
