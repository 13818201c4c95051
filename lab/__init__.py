"""The kernel lab: real Debian kernels booted under QEMU, and real QEMU guests on this host."""
