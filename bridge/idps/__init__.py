"""Identity providers as the bridge manages them: settings, files, the registry of those in force,
their endpoints, their metadata lifecycle (fetching, diffs, signatures) and claims previews."""
