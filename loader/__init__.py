"""Image verification and mapping: verify, then map, from the same bytes."""
