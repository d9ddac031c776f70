"""Same-ISA path: x86_64 static guests run in a KVM vCPU (see docs/kvm.md)."""
