"""`python -m kubenova.cli` runs the `kubenova` command."""

from kubenova.cli.main import main

main()
