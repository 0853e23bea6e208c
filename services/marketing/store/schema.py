"""Every marketing table on one MetaData: importing this module registers them all (the
migrations environment and the tests start here).
"""

from __future__ import annotations

from services.marketing.store import campaigns as _campaigns  # noqa: F401 — registers its tables
from services.marketing.store import experiments as _experiments  # noqa: F401
from services.marketing.store import facts as _facts  # noqa: F401
from services.marketing.store import segments as _segments  # noqa: F401
from services.marketing.store.tables import metadata

__all__ = ["metadata"]
