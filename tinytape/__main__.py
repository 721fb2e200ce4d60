"""`python -m tinytape`: print the configuration and run the kernel self-check."""

import sys

from . import selfcheck, show_config


def main() -> int:
    show_config()
    print("kernel self-check (C against the numpy references):")
    return 0 if selfcheck.run() else 1


if __name__ == "__main__":
    sys.exit(main())
