"""The simulated kernel presented as a machine: a sysfs tree, /dev nodes and media ioctls."""
