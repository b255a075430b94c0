"""CLI subcommands: one module per area, each registering on `pipeline.cli.app`."""
