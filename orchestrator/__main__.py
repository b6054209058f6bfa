"""`python -m orchestrator`: the rolecast command."""

from .cli import main

main()
