"""`PaseoClient` over the daemon's own WebSocket (PASEO_GATEWAY_TRANSPORT=daemon)."""
