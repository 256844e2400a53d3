"""`python -m olive_ext` runs the CLI."""

from olive_ext.cli import main

raise SystemExit(main())
