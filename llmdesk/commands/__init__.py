"""One module per `llmdesk` subcommand; each defines register(subparsers) and sets `run`."""
