"""Code generation backends: LLVM IR emission, optimisation, object output."""
