"""The HTTP layer: one Flask blueprint per TAXII resource."""
