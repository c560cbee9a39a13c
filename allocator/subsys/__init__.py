"""Kernel subsystems the media drivers build on: V4L2, DVB and ALSA, as far as they create
device nodes and media-controller objects."""
