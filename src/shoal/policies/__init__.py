"""Rules the runtime enforces, loaded from YAML packs (built-in ones live in ``packs/``)."""
