"""The rule of role names of a script: light (no CRD models), shared by the TtsJob spec
(:mod:`tts_crds.jobs`, which re-exports these names) and the speech request's ``roles``
(:mod:`tts_crds.speech`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_ROLES = 32
MAX_ROLE_LENGTH = 40
# a role as a plain-text script writes it before its colon: "Alice", "Dr. Smith", "Narrator 2"
ROLE_PATTERN = r"^[A-Za-z]([A-Za-z0-9_.' -]*[A-Za-z0-9_.'])?$"
_ROLE = re.compile(ROLE_PATTERN)


def check_role_names(roles: Iterable[str]) -> None:
    """The rule of role names (the CRD's CEL rule says the same): a map's keys carry no schema of their
    own, so the TtsJob spec and the speech API's ``roles`` both check them here."""
    bad = [k for k in roles if len(k) > MAX_ROLE_LENGTH or not _ROLE.match(k)]
    if bad:
        raise ValueError(f"role name {bad[0]!r} is not a name of letters, digits, space, '_', '.', \"'\", '-'")
