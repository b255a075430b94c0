"""tunnelpi detectors."""
