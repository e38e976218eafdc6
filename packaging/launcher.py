"""The frozen app's entry point: the same `llmdesk` command as the installed package's."""

import sys

from llmdesk.cli import main

sys.exit(main())
