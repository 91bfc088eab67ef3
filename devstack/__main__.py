"""`python -m devstack`: the local stack's command line."""

from devstack.cli import main

raise SystemExit(main())
