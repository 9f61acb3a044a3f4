"""Corpus outputs: shards, metadata, splits, manifest and summaries."""
