"""A prompt's turn: admitted and started (service), run against Paseo (run), its events stored
before anyone sees them (events, listener), its records kept (store), and how it ends decided
by pure functions (decisions, states)."""
