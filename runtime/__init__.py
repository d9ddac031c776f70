"""aotrun's execution engine: guest memory, syscalls, dispatch."""
