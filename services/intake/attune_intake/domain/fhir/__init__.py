"""FHIR R4 resources mapped onto contract envelopes: pure (no I/O), covered by the domain contracts."""
