"""Upward reports (上部団体への報告): the one thing a union sends up to its federation, by its own officers' act."""
