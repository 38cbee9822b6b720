"""Host adapters, installed as ``freecg_plugin.adapters``; each imports its host lazily."""
