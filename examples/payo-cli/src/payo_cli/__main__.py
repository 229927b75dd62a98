"""The ``payo`` command."""
import argparse

from . import __version__


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="payo", description="Say hello from a private index.")
    parser.add_argument("--version", action="version", version=f"payo-cli {__version__}")
    sub = parser.add_subparsers(dest="command")
    hello = sub.add_parser("hello", help="greet someone")
    hello.add_argument("name", nargs="?", default="world")
    args = parser.parse_args(argv)
    if args.command == "hello":
        print(f"Hello, {args.name}!")
    else:
        parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
