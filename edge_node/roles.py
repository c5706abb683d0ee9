"""Who may do what at the commune desk: one table of actions and the staff roles allowed each.

A clerk receives and processes dossiers; a leader does everything a clerk does and also approves
(the transition to `resolved`), resolves conflicts, amends a closed dossier (an edit after a final
status, with its reason) and reads statistics; an admin manages staff accounts. Reading dossiers
needs only a login. The JSON API and the web UI check the same table.
"""

from __future__ import annotations

import logging
from typing import Any

from service.accounts import User
from service.web import require_role

log = logging.getLogger(__name__)

ROLES = ("clerk", "leader", "admin")

PERMITS: dict[str, frozenset[str]] = {
    "intake": frozenset({"clerk", "leader"}),
    "edit": frozenset({"clerk", "leader"}),
    "amend": frozenset({"leader"}),
    "transition": frozenset({"clerk", "leader"}),
    "approve": frozenset({"leader"}),
    "resolve": frozenset({"leader"}),
    "transfer": frozenset({"leader"}),  # moving competence is the leader's decision
    "comment": frozenset({"clerk", "leader"}),
    "attach": frozenset({"clerk", "leader"}),
    "apology": frozenset({"clerk", "leader"}),
    "register": frozenset({"clerk", "leader"}),
    "statistics": frozenset({"leader"}),
    "users": frozenset({"admin"}),
}

ACTION_WORDS = {
    "intake": "receive dossiers",
    "edit": "edit dossiers",
    "amend": "amend a closed dossier (an edit with a reason, after returned, refused, withdrawn "
             "or stopped)",
    "transition": "change a dossier's status",
    "approve": "approve a result (move a dossier to resolved)",
    "resolve": "resolve conflicts",
    "transfer": "transfer a dossier to another commune",
    "comment": "comment on dossiers",
    "attach": "attach files",
    "apology": "apologize with a new appointment",
    "register": "read the register",
    "statistics": "read statistics",
    "users": "manage staff accounts",
}

# Reaching this status is an approval: only a leader signs a result off.
APPROVAL_STATUS = "resolved"


def may(role: str, action: str) -> bool:
    """True iff `role` may perform `action` (an unknown action is refused)."""
    return role in PERMITS.get(action, frozenset())


def transition_action(target: object) -> str:
    """The permission a transition to `target` needs."""
    return "approve" if target == APPROVAL_STATUS else "transition"


def edit_action(body: Any) -> str:
    """The permission an edit needs: one with a reason is an amendment (the protocol asks for a
    reason once a dossier is final, so a clerk's edit of a closed dossier is refused either way)."""
    reason = body.get("reason") if isinstance(body, dict) else None
    return "amend" if isinstance(reason, str) and reason.strip() else "edit"


def authorize(user: User, action: str, body: Any) -> None:
    """The edge's policy for the dossier API: raise Forbidden unless the user's role permits."""
    if action == "transition" and isinstance(body, dict):
        action = transition_action(body.get("to"))
    elif action == "edit":
        action = edit_action(body)
    require_role(user, PERMITS.get(action, frozenset()), ACTION_WORDS.get(action, action))
