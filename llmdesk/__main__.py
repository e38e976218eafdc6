from llmdesk.cli import main

raise SystemExit(main())
