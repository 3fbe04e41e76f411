"""Leadership: exactly one process at a time runs a role (alerting, quota decisions, digests).

A lease with a fencing token on ClickHouse (:mod:`.lease`), competed for by an
:class:`~.elector.Elector` thread in every worker; roles implement :class:`~.elector.LeaderRole`.
See docs/scaling.md for why a lease rather than Kafka partition ownership.
"""

from spendstream.leadership.elector import Elector, Fence, LeaderRole, holder_id
from spendstream.leadership.lease import LeaseState, LeaseStore

__all__ = ["Elector", "Fence", "LeaderRole", "LeaseState", "LeaseStore", "holder_id"]
