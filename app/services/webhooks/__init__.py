"""Webhooks: subscriptions, the outbox's worker, and what each attempt decides."""
