"""Data: whole-sequence training windows, session-log converters and a seeded session generator."""
