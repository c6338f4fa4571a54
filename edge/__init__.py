"""Device software: sources, geotagging, outbox, uplink, CLI. No Django, no torch."""
