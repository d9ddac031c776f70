"""Reading guest ELF executables."""
