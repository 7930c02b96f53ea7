"""The small-group rule: a figure about fewer than SMALL_GROUP people is not shown where it could single a person
out (a per-unit figure of an anonymous survey, a per-union figure the federation sees of its notices). One
definition, so every such figure follows the same threshold and the UI can say it."""
from __future__ import annotations

SMALL_GROUP = 5


def too_small(people: int) -> bool:
    """Whether a figure about this many people must be withheld (none at all is not a person to single out)."""
    return 0 < people < SMALL_GROUP
