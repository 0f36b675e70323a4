"""What contract v1.2 names that the functions do not serve yet (docs/protocol.md §2-§3, §8).

The protocol package has the whole vocabulary; the functions gain it route by route. The
tests that hold "every action" or "every server frame" to a rule leave these out, and fail
as soon as one of them is served: take it off its set then, so the rule covers it.
"""

from __future__ import annotations

from messenger_protocol.names import Action, FrameType

ACTIONS_NOT_ROUTED_YET: frozenset[Action] = frozenset()
FRAMES_NOT_SENT_YET: frozenset[FrameType] = frozenset()
