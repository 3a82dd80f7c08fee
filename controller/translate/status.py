"""Building blocks of the `status` stanzas the translator writes: conditions and problems.

In: a condition's type, truth, reason and message, plus a `Stamp` (the object's
`metadata.generation` and the translation clock). Out: the condition as the Kubernetes API spells
it (`metav1.Condition`). The status writer (controller.k8s) keeps `lastTransitionTime` when a
condition's status did not change, so the clock value matters only for new transitions; golden
files use a constant.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, NamedTuple


class Problem(NamedTuple):
    """Why something is not right: a condition reason and a message for humans."""

    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Stamp:
    """What every condition of one object carries besides its own fields."""

    generation: int | None
    """`metadata.generation`, written as `observedGeneration`; None leaves it out."""
    now: str
    """`lastTransitionTime`, RFC 3339."""


def rfc3339(when: datetime.datetime) -> str:
    """`2024-01-02T03:04:05Z` (seconds precision, UTC), as metav1.Time serializes."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(type_: str, ok: bool, reason: str, message: str, stamp: Stamp) -> dict[str, Any]:
    """One `metav1.Condition`."""
    out: dict[str, Any] = {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": stamp.now,
    }
    if stamp.generation is not None:
        out["observedGeneration"] = stamp.generation
    return out


def from_problem(
    type_: str, problem: Problem | None, ok_reason: str, ok_message: str, stamp: Stamp
) -> dict[str, Any]:
    """A positive-polarity condition: True with `ok_reason` unless there is a problem."""
    if problem is None:
        return condition(type_, True, ok_reason, ok_message, stamp)
    return condition(type_, False, problem.reason, problem.message, stamp)
