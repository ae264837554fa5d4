"""`python -m kubenova.operator` runs the operator."""

from kubenova.operator.main import main

main()
