"""`python -m agent` is `trygg`."""

from .cli import main

main()
