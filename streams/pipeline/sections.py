"""The canonical sections a mapping fills and a destination translates: their well-known keys.

Imports nothing: the destinations read these names without importing the rest of the pipeline.
"""

from __future__ import annotations

# keys of the `event` section that the pipeline sets or relies on; destinations other than Zeotap
# (which takes the sections as they are) move them to their own fields
EVENT_NAME, EVENT_ID, EVENT_TS = "eventName", "eventId", "eventTimestamp"
RESERVED_EVENT_KEYS = frozenset({EVENT_NAME, EVENT_ID, EVENT_TS})
