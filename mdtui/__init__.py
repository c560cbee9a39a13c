"""mdtui: a terminal inspector for media devices shared through the Media Device Allocator API."""

__version__ = "0.1.0"
