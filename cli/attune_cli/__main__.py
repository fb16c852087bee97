"""`python -m attune_cli` runs the attune command."""

from attune_cli.main import app

app()
