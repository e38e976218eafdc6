"""Qt only: thin pages and widgets that subscribe to core objects. Logic lives in llmdesk.core.

The folders mirror llmdesk.core's domains, and import-linter keeps them in layers (pyproject.toml):

    app, main_window        the QApplication with qasync, and the window with its sidebar and status bar
    pages/                  one page per domain (machine, hub = Models, server, chat, metrics = Dashboard, settings)
    chat/ hub/ metrics/     each page's parts, named like the page
    fit/                    the fit report panel, shown by the Models and Server pages
    context, tasks, problems, theme, widgets, ...   what every page uses
"""
