"""``python -m tiedae.bench``: see ``tiedae.bench.cli``."""

from tiedae.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
