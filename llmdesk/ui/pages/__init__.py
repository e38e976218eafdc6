"""One module per sidebar page, named after the core domain it shows:

    machine.py  Machine     hub.py      Models      server.py   Server
    chat.py     Chat        metrics.py  Dashboard   settings.py Settings
    planned.py  the pages not built yet
"""
