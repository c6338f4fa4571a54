"""Server-side intake: MQTT consumer, verification, image store, broker set-up."""
