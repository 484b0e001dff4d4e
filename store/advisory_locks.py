"""PostgreSQL transaction-scoped advisory locks taken several at a time, as statements built once.

The audit store serialises writers of one case, and issuers of one warning source, by advisory locks on
64-bit keys (blake2b of a namespaced id). Groups of them (the hot-issue feed's cases, a warning round's
chunk) take their locks in one statement each: a round trip per lock was what the group paid.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, bindparam, func, select
from sqlalchemy.dialects import postgresql

#: Each element of the bound array `keys`, in the array's order.
_KEY = func.unnest(bindparam("keys", type_=postgresql.ARRAY(BigInteger))).column_valued("key")
#: Waits for the lock of every key in `keys`, in the order given (pass them sorted: two groups then never
#: wait on each other in a cycle).
LOCK_KEYS = select(func.pg_advisory_xact_lock(_KEY))
#: Each key of `keys` with whether its lock was free (and is now this transaction's); never waits.
TRY_LOCK_KEYS = select(_KEY, func.pg_try_advisory_xact_lock(_KEY))
#: Waits for the lock of the one key `key`.
LOCK_KEY = select(func.pg_advisory_xact_lock(bindparam("key", type_=BigInteger)))
