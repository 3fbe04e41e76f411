"""What a tag key may be: shared by the event schema and the config sections that name tags.

Kept apart from :mod:`spendstream.events` (whose pydantic models cost ~13 ms to build) so that
loading the settings, which every CLI command does, does not build the event models.
"""

from __future__ import annotations

import re

MAX_TAG_KEY_CHARS = 64
TAG_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_.\-]*$")
