"""fan_monitor: vibration classification for a cooling fan."""
