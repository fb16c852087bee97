"""The attune command-line tool."""

import typer

app = typer.Typer(help="Attune: alliance-aware, measurement-based care.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo("attune 0.1.0")
