"""Text renderings of snapshots: ``dump``'s formats and the pieces the TUI reuses."""
