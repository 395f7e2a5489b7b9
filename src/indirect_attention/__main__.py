"""``python -m indirect_attention`` runs the ``ia`` command line."""

from .cli import main

raise SystemExit(main())
