"""``python -m streams.dev.emulator``: serve the emulator until Ctrl-C (``--help`` lists the flags)."""

from streams.dev.emulator.cli import main

if __name__ == "__main__":
    main()
