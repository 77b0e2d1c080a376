"""Files a run writes: atomic writes, image formats with settings, names, metadata and fingerprints."""
