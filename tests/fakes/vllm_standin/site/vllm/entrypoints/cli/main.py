"""`python -m vllm.entrypoints.cli.main serve MODEL [flags]` for the stand-in."""
import sys


def main(argv=None):
    from vllm import _standin

    return _standin.cli_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
