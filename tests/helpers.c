/* helpers.c — shared test helpers (filled in below). */
