"""Deploy: the launch the app runs, as docker, compose, systemd, Kubernetes and Helm files, each
validated offline, with the production checklist. Generated from the one LaunchConfig and the argv
`llmdesk serve` builds from it (target.py), so the desk and the cluster cannot drift. No Qt."""
