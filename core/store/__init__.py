"""Storage: the SQLite trace, its codec, recorder, replay, diff and metrics export."""
