"""``python -m shoal.cli``: the ``shoal`` command, as the console script runs it."""

from shoal.cli import main

if __name__ == "__main__":
    main()
