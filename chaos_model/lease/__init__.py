"""A stack shared between processes under a lease, with a dead-man switch.

``chaos-model stack up`` owns a stack and serves it on loopback (:class:`StackOwner`); a runner in
another process drives it as a :class:`RemoteStack`, renewing a lease that lists the faults it
applied. When the runner dies, even by SIGKILL, or a fault outlives its bound, the owner's
watchdog heals the stack.
"""

from chaos_model.lease._owner import StackOwner
from chaos_model.lease._remote import RemoteService, RemoteStack

__all__ = ["RemoteService", "RemoteStack", "StackOwner"]
