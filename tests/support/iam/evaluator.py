"""A small evaluator of identity-based IAM policies: does a policy document allow one
action on one resource, given the request's condition keys?

It follows AWS's documented evaluation logic for a single identity policy: an explicit
Deny wins; otherwise some Allow must match; otherwise the request is implicitly denied.
A statement matches when its Action (or NotAction) and Resource (or NotResource) match,
with ``*`` and ``?`` wildcards (actions case-insensitively, resources case-sensitively),
and every condition holds. Conditions: the String*, Arn*, Bool and Null operators, each
with ``IfExists``, and the ``ForAnyValue:``/``ForAllValues:`` set qualifiers; several
values of one key are OR-ed, several keys and operators are AND-ed; a key the request
does not carry fails the condition (unless ``IfExists`` or ``Null``). That is all the
skyclass policies use; an operator this module does not know raises, so a policy never
passes by an operator being ignored.

Not modelled (the skyclass policies use none): policy variables, numeric and date
operators, resource-based policies, permission boundaries, SCPs and session policies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ALLOW = "allow"
EXPLICIT_DENY = "explicit deny"
IMPLICIT_DENY = "implicit deny"

Context = Mapping[str, str | Sequence[str]]


class UnsupportedConditionError(ValueError):
    """A condition operator this evaluator cannot judge."""


@dataclass(frozen=True)
class Decision:
    outcome: str
    statement: str | None = None  # the Sid of the statement that decided, if any

    @property
    def allowed(self) -> bool:
        return self.outcome == ALLOW


def evaluate(document: Mapping[str, Any], action: str, resource: str,
             context: Context | None = None) -> Decision:
    """Whether ``document`` allows ``action`` on ``resource`` with ``context``."""
    context = context or {}
    allowed_by = None
    for index, statement in enumerate(_statements(document)):
        if not _matches(statement, action, resource, context):
            continue
        sid = statement.get("Sid") or f"#{index}"
        if statement["Effect"] == "Deny":
            return Decision(EXPLICIT_DENY, sid)
        allowed_by = allowed_by or sid
    return Decision(ALLOW, allowed_by) if allowed_by else Decision(IMPLICIT_DENY)


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _matches(statement: Mapping[str, Any], action: str, resource: str,
             context: Context) -> bool:
    if "Action" in statement:
        if not any(_wild(p, action, fold=True) for p in _listed(statement["Action"])):
            return False
    elif any(_wild(p, action, fold=True) for p in _listed(statement["NotAction"])):
        return False
    if "Resource" in statement:
        if not any(_wild(p, resource) for p in _listed(statement["Resource"])):
            return False
    elif any(_wild(p, resource) for p in _listed(statement["NotResource"])):
        return False
    return all(
        _condition_holds(operator, key, _listed(values), context)
        for operator, keys in statement.get("Condition", {}).items()
        for key, values in keys.items()
    )


def _wild(pattern: str, value: str, fold: bool = False) -> bool:
    """IAM's wildcards: ``*`` any run of characters (``/`` and ``:`` included), ``?``
    one character; nothing else is special."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    flags = re.DOTALL | (re.IGNORECASE if fold else 0)
    return re.fullmatch(regex, value, flags) is not None


def _condition_holds(operator: str, key: str, expected: list[str], context: Context) -> bool:
    qualifier, _, operator = operator.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    found = _lookup(context, key)
    if operator == "Null":
        want_missing = expected[0].lower() == "true"
        return (found is None) == want_missing
    if found is None:
        return if_exists
    values = _listed(found)
    test = _OPERATORS.get(operator)
    if test is None:
        raise UnsupportedConditionError(f"condition operator {operator!r} is not modelled")
    if qualifier == "ForAllValues":
        return all(test(value, expected) for value in values)
    if qualifier == "ForAnyValue" or len(values) == 1:
        return any(test(value, expected) for value in values)
    raise UnsupportedConditionError(
        f"{key} has several values; a {operator} condition on it needs ForAnyValue or "
        "ForAllValues")


def _lookup(context: Context, key: str) -> str | Sequence[str] | None:
    # Condition keys are case-insensitive; tag values in them are not.
    lowered = key.lower()
    return next((value for name, value in context.items() if name.lower() == lowered), None)


def _any_like(value: str, patterns: list[str]) -> bool:
    return any(_wild(p, value) for p in patterns)


_OPERATORS = {
    "StringEquals": lambda v, e: v in e,
    "StringNotEquals": lambda v, e: v not in e,
    "StringEqualsIgnoreCase": lambda v, e: v.lower() in {x.lower() for x in e},
    "StringNotEqualsIgnoreCase": lambda v, e: v.lower() not in {x.lower() for x in e},
    "StringLike": _any_like,
    "StringNotLike": lambda v, e: not _any_like(v, e),
    "ArnEquals": lambda v, e: v in e,
    "ArnLike": _any_like,
    "ArnNotEquals": lambda v, e: v not in e,
    "ArnNotLike": lambda v, e: not _any_like(v, e),
    "Bool": lambda v, e: str(v).lower() in {x.lower() for x in e},
}
