"""Every contract Helios speaks, defined once as typed code (msgspec Structs).

``openrtb``: the BidRequest the gateway accepts, with its rules. ``messages``: the
envelope on ``bid_requests``, ``bid_responses``, ``auction_outcomes`` and the dead-letter
headers. OpenAPI, DuckDB parse types, table DDL and docs/messages.md derive from these.
"""
