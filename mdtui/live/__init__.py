"""The live system: sysfs, the media ioctls, udev events, and sysfs writes."""
