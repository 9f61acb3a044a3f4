"""Caption records (structured annotation) and their text renderings."""
