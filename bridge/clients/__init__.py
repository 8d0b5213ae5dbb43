"""OAuth clients: those of the settings file and those managed through the admin API, as one set."""
