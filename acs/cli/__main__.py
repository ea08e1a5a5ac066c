"""``python -m acs.cli``: the ``acs`` command."""

from acs.cli import main

# `acs serve` spawns its workers, which import this module again as __mp_main__.
if __name__ == "__main__":
    raise SystemExit(main())
