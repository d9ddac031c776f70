"""System calls that wait on descriptors or make new kinds of them: poll,
select, epoll, eventfd, timerfd, sockets and friends (a ``LinuxKernel``
mixin; see runtime/linux/syscall_base.py)."""

from __future__ import annotations


class IoCalls:
    pass
