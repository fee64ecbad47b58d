"""``python -m digits.cli``: the ``digits`` command, for child processes started with this interpreter."""

from digits.cli import main

main()
