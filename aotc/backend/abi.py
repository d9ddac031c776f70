"""The contract between generated code and the runtime that runs it."""

# Version of the code generator's output: part of every build-cache key,
# recorded in every image, and an image runs only on a runtime of the same
# version (the block calling convention, the state layout the code assumes
# and the exit codes may change from one version to the next).
CODEGEN_VERSION = 17
