"""Notifications across processes: the streams of this process (hub) and the wake-ups between processes (broker)."""
