"""riscv64 (RV64GC) guest support: decoder, semantics, state layout."""
