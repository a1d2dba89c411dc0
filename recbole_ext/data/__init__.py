"""Data: whole-sequence training windows, session-log converters, a seeded session generator, the
safe writing of dataset folders and the checks of atomic files while RecBole loads them."""
