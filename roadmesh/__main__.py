"""`python -m roadmesh ...` is the `roadmesh` command."""

import sys

from roadmesh.cli import main

sys.exit(main())
