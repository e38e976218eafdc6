"""Stand-ins for hardware and services the unit tests must not need."""
