"""Run the Hub stand-in with the fixture catalogue in its own process (for bench scripts).

    python -m tests.fakes.run_hub [--shard-bytes N]     prints its URL, serves until stdin closes
"""

import argparse
import sys

from tests.fakes.hub_fixtures import add_catalogue
from tests.fakes.hub_server import HubStandIn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shard-bytes", type=int, default=4_000_000)
    args = parser.parse_args()
    with HubStandIn() as hub:
        add_catalogue(hub, shard_bytes=args.shard_bytes)
        print(hub.url, flush=True)
        sys.stdin.read()  # until the parent closes the pipe


if __name__ == "__main__":
    main()
