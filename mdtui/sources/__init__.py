"""Where snapshots come from: the simulated kernel (``sim``) or the live system (``live``)."""
