"""What reporting publishes: nothing (its reports are read over HTTP). Declared so the AsyncAPI
document is generated the same way as the other services', and a new publisher has a place to go.
"""

from __future__ import annotations

from attune_shared.asyncapi import Output

OUTPUTS: tuple[Output, ...] = ()
