"""Helpers for the WIT values that componentize-py generates (internal)."""

import re
from typing import Any

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def case_name(value: Any) -> str:
    """The WIT name of a variant case, for example `not-allowed`.

    componentize-py represents the case `not-allowed` of the variant `error`
    as an instance of the class `Error_NotAllowed`.
    """
    case = type(value).__name__.rpartition("_")[2]
    return _CAMEL_BOUNDARY.sub("-", case).lower()


def payload(value: Any) -> Any:
    """The payload of a variant case, or None for a case without one."""
    return getattr(value, "value", None)
