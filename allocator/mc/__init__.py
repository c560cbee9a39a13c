"""The media controller core (drivers/media/mc): graph objects, media devices, devnodes."""
