"""mdtui: a terminal inspector for media devices shared through the Media Device Allocator API."""

import logging

__version__ = "0.1.0"

# the log goes where --log or --dev sends it (mdtui/logs.py), never to stderr under the TUI
logging.getLogger(__name__).addHandler(logging.NullHandler())
