"""``python -m shoprec.cli``, as the ``shoprec`` console script."""

from shoprec.cli import main

main()
