"""Names that cross between the sides: staff members (in commands, results and the audit) and the
night a look-in belongs to. One rule each, used by the device and the receiving side alike. No I/O.
"""

import re
from datetime import datetime, timedelta

STAFF_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
ROLE_NAME = r"^[a-z][a-z0-9-]{0,31}$"  # a role as config, commands and the look-in plan name it
STAFF_NAME_RULE = "1-63 characters a-z, 0-9, '.', '_' and '-', starting with a letter or digit"


def is_staff_name(name) -> bool:
    return isinstance(name, str) and STAFF_NAME_RE.fullmatch(name) is not None


def night_of(local: datetime) -> str:
    """The night a local time belongs to, named by its evening's date (noon to noon)."""
    return (local - timedelta(hours=12)).date().isoformat()
