"""The app's widgets: each renders a part of a ``SystemSnapshot`` and nothing else."""
